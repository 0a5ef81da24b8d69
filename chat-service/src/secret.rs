//! Secrets given on the command line, in the environment or in a file.

use std::path::Path;

use zeroize::Zeroizing;

/// A secret that never shows in `Debug` output or logs, and whose memory is wiped when it is
/// dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The secret itself, for comparing or sending.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from the first line of a file; an empty secret is an error.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?,
        );
        let secret = Secret::from(text.lines().next().unwrap_or(""));
        if secret.0.is_empty() {
            return Err(format!("the secret file {} is empty", path.display()));
        }
        Ok(secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(Zeroizing::new(s.to_owned()))
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::from(s))
    }
}

/// Bytes a relay secret has at least: guessed at the server's throttled pace, a secret this
/// long is out of reach (`head -c 24 /dev/urandom | base64` makes one).
pub const MIN_RELAY_SECRET: usize = 32;
/// Bytes a relay secret has at most: it travels in the 4 KiB handshake frame.
pub const MAX_RELAY_SECRET: usize = 1024;

impl Secret {
    /// Checks a secret shared by a server and its relays: long enough not to be guessed,
    /// short enough for the handshake.
    pub fn check_relay_secret(&self) -> Result<(), String> {
        let len = self.0.len();
        if len < MIN_RELAY_SECRET {
            return Err(format!(
                "the relay secret must be at least {MIN_RELAY_SECRET} bytes long (this one has \
                 {len}); make one with: head -c 24 /dev/urandom | base64"
            ));
        }
        if len > MAX_RELAY_SECRET {
            return Err(format!(
                "the relay secret must be at most {MAX_RELAY_SECRET} bytes long"
            ));
        }
        Ok(())
    }

    /// The secret given directly, else read from `file`, else none.
    pub fn resolve(given: Option<Secret>, file: Option<&Path>) -> Result<Option<Secret>, String> {
        match (given, file) {
            (Some(s), _) => Ok(Some(s)),
            (None, Some(path)) => Secret::from_file(path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_secret() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_secret_comes_from_the_flag_first_then_the_file() {
        let dir = std::env::temp_dir().join(format!("chat-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\nsecond line\n").expect("write");
        let flag = Some(Secret::from("from-flag"));
        let got = Secret::resolve(flag, Some(&file)).expect("resolve");
        assert_eq!(got.expect("some").expose(), "from-flag");
        let got = Secret::resolve(None, Some(&file)).expect("resolve");
        assert_eq!(got.expect("some").expose(), "from-file");
        assert!(Secret::resolve(None, None).expect("resolve").is_none());
        std::fs::write(&file, "").expect("write");
        assert!(Secret::resolve(None, Some(&file)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
