//! Whom the user ignores (`/ignore NICK`): their messages, public and private, are hidden (and
//! counted). Kept in `ignored` next to the configuration file, one nickname per line, so that
//! it survives a restart; both the full-screen client and the line mode use it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chat_core::names::fold;

/// Most nicknames ignored.
pub const MAX_IGNORED: usize = 1000;

/// The ignore list, and where it is kept (`None`: in memory only).
#[derive(Debug, Default, Clone)]
pub struct Ignored {
    path: Option<PathBuf>,
    /// Folded nickname to the nickname as typed.
    nicks: BTreeMap<String, String>,
}

/// The default file: `<config dir>/chat-suite/ignored` (`~/.config/chat-suite/ignored` on
/// Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat-suite").map(|d| d.config_dir().join("ignored"))
}

impl Ignored {
    /// The list kept at `path` (empty when the file does not exist or cannot be read; the
    /// error, if any, is returned to be shown).
    pub fn load(path: Option<PathBuf>) -> (Self, Option<String>) {
        let mut list = Ignored {
            path,
            nicks: BTreeMap::new(),
        };
        let Some(path) = list.path.clone() else {
            return (list, None);
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().map(str::trim) {
                    if !line.is_empty() && !line.starts_with('#') && list.nicks.len() < MAX_IGNORED
                    {
                        list.nicks.insert(fold(line), line.to_owned());
                    }
                }
                (list, None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (list, None),
            Err(e) => (list, Some(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Whether messages from `nick` are hidden.
    pub fn contains(&self, nick: &str) -> bool {
        !self.nicks.is_empty() && self.nicks.contains_key(&fold(nick))
    }

    /// The nicknames, sorted.
    pub fn list(&self) -> Vec<String> {
        self.nicks.values().cloned().collect()
    }

    /// Ignores `nick` from now on (saved); the error says why it could not be saved.
    pub fn add(&mut self, nick: &str) -> Result<(), String> {
        if self.nicks.len() >= MAX_IGNORED {
            return Err(format!("you ignore {MAX_IGNORED} people already"));
        }
        self.nicks.insert(fold(nick), nick.to_owned());
        self.save()
    }

    /// Stops ignoring `nick`; false if it was not ignored.
    pub fn remove(&mut self, nick: &str) -> Result<bool, String> {
        if self.nicks.remove(&fold(nick)).is_none() {
            return Ok(false);
        }
        self.save().map(|()| true)
    }

    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text =
            String::from("# Nicknames chat-tui hides messages from (/ignore, /unignore).\n");
        for nick in self.nicks.values() {
            text.push_str(nick);
            text.push('\n');
        }
        write_atomically(path, &text)
            .map_err(|e| format!("cannot save the ignore list in {}: {e}", path.display()))
    }
}

/// Writes `text` to a temporary file next to `path`, then renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_survives_a_restart_and_ignores_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("ignored");
        let (mut list, error) = Ignored::load(Some(path.clone()));
        assert!(error.is_none());
        list.add("Bob").expect("saved");
        list.add("carol").expect("saved");
        let (again, _) = Ignored::load(Some(path));
        assert!(again.contains("bob") && again.contains("CAROL") && !again.contains("dave"));
        assert_eq!(again.list(), ["Bob", "carol"]);
        let mut again = again;
        assert_eq!(again.remove("BOB"), Ok(true));
        assert_eq!(again.remove("bob"), Ok(false));
    }
}
