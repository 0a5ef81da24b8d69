//! The monitor's token, kept between restarts. A token that changed at every start left an open
//! monitor tab retrying a token nobody would accept again; kept in the data folder, the link
//! printed at start stays the same until the file is deleted.

use std::io::{self, Write};
use std::path::Path;

use chat_service::Secret;

use super::random_token;

/// The file's name, in the data folder.
pub const TOKEN_FILE: &str = "monitor-token";

/// The token kept in `path`; when there is none (or what is there is not a usable token), a
/// new random one, written there first. The file is readable by its owner only: the token opens
/// a page that shows private messages.
pub fn kept_token(path: &Path) -> io::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) if usable(text.trim()) => {
            owner_only(path)?;
            return Ok(Secret::from(text.trim()));
        }
        Ok(_) => tracing::warn!(
            "{} holds no usable monitor token: writing a new one",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = random_token()?;
    write_owner_only(path, token.expose())?;
    Ok(token)
}

/// What `--monitor-token` accepts too: 16 characters or more that need no escaping in a URL.
fn usable(token: &str) -> bool {
    token.len() >= 16
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed over it), readable by
/// its owner only, creating the folder if needed.
fn write_owner_only(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial)?;
    owner_only(&partial)?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

/// Makes `path` readable by its owner only (a file copied in by hand may not be).
fn owner_only(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_then_kept_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join(TOKEN_FILE);
        let first = kept_token(&path).expect("made");
        assert_eq!(kept_token(&path).expect("kept"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A file left unusable is replaced, not trusted.
        std::fs::write(&path, "short\n").expect("write");
        let replaced = kept_token(&path).expect("replaced");
        assert_ne!(replaced, first);
        assert_eq!(kept_token(&path).expect("kept"), replaced);
    }
}
