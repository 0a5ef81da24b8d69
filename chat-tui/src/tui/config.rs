//! The client's settings: the optional configuration file (`chat-tui.toml` in the platform's
//! configuration directory, or `--config PATH`), and the [`Options`] that it and the flags
//! resolve to.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the configuration file may set; command-line flags take precedence.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Nickname to prefill.
    pub nick: Option<String>,
    /// Server (or relay) address, `host:port`.
    pub server: Option<String>,
    /// Lines kept per tab (default 10000).
    pub scrollback: Option<usize>,
    /// Show times in UTC.
    pub utc: Option<bool>,
    /// Show the roster sidebar (default true; F2 toggles it).
    pub roster: Option<bool>,
    /// Where received files are saved (default: the download folder).
    pub download_dir: Option<PathBuf>,
}

/// The default location: `<config dir>/chat-suite/chat-tui.toml`
/// (`~/.config/chat-suite/chat-tui.toml` on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat-suite")
        .map(|d| d.config_dir().join("chat-tui.toml"))
}

/// Reads the configuration. A missing file is fine unless it was named explicitly; a file
/// that cannot be read or parsed is an error that names the file.
pub fn load(path: &Path, explicit: bool) -> Result<FileConfig, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default());
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
}

/// Settings that do not change while running.
#[derive(Debug, Clone)]
pub struct Options {
    /// Show times in UTC.
    pub utc: bool,
    /// Use colours (off when `NO_COLOR` is set).
    pub color: bool,
    /// Lines kept per tab.
    pub scrollback: usize,
    /// Show the roster sidebar when the terminal is wide enough.
    pub roster: bool,
    /// Where the ignore list is kept (`None`: in memory only).
    pub ignore_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            utc: false,
            color: true,
            scrollback: 10_000,
            roster: true,
            ignore_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_keys_and_rejects_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat-tui.toml");
        std::fs::write(
            &path,
            "nick = \"alice\"\nserver = \"example.org:12345\"\nscrollback = 500\n",
        )
        .expect("write");
        let c = load(&path, true).expect("load");
        assert_eq!(c.nick.as_deref(), Some("alice"));
        assert_eq!(c.server.as_deref(), Some("example.org:12345"));
        assert_eq!(c.scrollback, Some(500));

        std::fs::write(&path, "nickname = \"alice\"\n").expect("write");
        let e = load(&path, true).expect_err("unknown key");
        assert!(e.contains("chat-tui.toml") && e.contains("nickname"), "{e}");
    }

    #[test]
    fn a_missing_file_matters_only_when_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.toml");
        assert_eq!(load(&path, false), Ok(FileConfig::default()));
        assert!(load(&path, true).is_err());
    }
}
