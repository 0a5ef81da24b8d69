//! Which servers this client trusts, the way SSH decides about host keys: a certificate that
//! chains to the web's roots is accepted as a browser would accept it; any other is trusted
//! only with the fingerprint accepted before (`known_servers` in the configuration folder) or
//! given with `--trust-fingerprint`. A first connection asks (the full-screen client) or is
//! refused with the fingerprint (the line mode, unless `--trust-on-first-use`); a changed
//! certificate is always refused, with both fingerprints and the command that forgets the old
//! one.

use std::collections::HashMap;
use std::path::PathBuf;

use chat_core::Security;
use chat_core::tls::KnownServers;

/// The default `known_servers`: `<config dir>/chat-suite/known_servers`
/// (`~/.config/chat-suite/known_servers` on Linux).
pub fn default_known_servers() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat-suite")
        .map(|d| d.config_dir().join("known_servers"))
}

/// How this run of the client trusts servers.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// `--plaintext`: no TLS at all.
    pub plaintext: bool,
    /// `--trust-fingerprint`: the fingerprint to accept, whatever `known_servers` says.
    pub given: Option<String>,
    /// `--trust-on-first-use`: accept (and remember) a server seen for the first time.
    pub first_use: bool,
    /// The accepted fingerprints; `None` when there is no configuration folder.
    pub known: Option<KnownServers>,
    /// Fingerprints accepted during this run that could not be written down.
    session: HashMap<String, String>,
}

/// What to make of a certificate that was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: ask the user (or accept it, with `--trust-on-first-use`).
    FirstUse,
    /// Not the one accepted before: refuse.
    Changed {
        /// The fingerprint accepted before.
        old: String,
    },
    /// Not the one given with `--trust-fingerprint`: refuse.
    NotGiven {
        /// The fingerprint given.
        given: String,
    },
}

impl Trust {
    /// Trusting what `known` holds (with no flags given).
    pub fn new(known: Option<KnownServers>) -> Self {
        Trust {
            known,
            ..Trust::default()
        }
    }

    /// How to connect to `server`.
    pub fn security(&self, server: &str) -> Security {
        if self.plaintext {
            Security::Plain
        } else {
            Security::Tls {
                pinned: self.pinned(server),
            }
        }
    }

    /// The fingerprint trusted for `server`, if any.
    pub fn pinned(&self, server: &str) -> Option<String> {
        self.given
            .clone()
            .or_else(|| self.session.get(server).cloned())
            .or_else(|| self.known.as_ref().and_then(|k| k.lookup(server)))
    }

    /// What the refused certificate of `server` means.
    pub fn judge(&self, server: &str) -> Verdict {
        if let Some(given) = &self.given {
            return Verdict::NotGiven {
                given: given.clone(),
            };
        }
        match self.pinned(server) {
            Some(old) => Verdict::Changed { old },
            None => Verdict::FirstUse,
        }
    }

    /// Trusts `fingerprint` for `server` from now on, in `known_servers` when it can be
    /// written (else for this run only, and the error says why).
    pub fn accept(&mut self, server: &str, fingerprint: &str) -> Result<(), String> {
        self.session
            .insert(server.to_owned(), fingerprint.to_owned());
        let Some(known) = &self.known else {
            return Err("no configuration folder to keep it in: trusted for this run only".into());
        };
        known.remember(server, fingerprint).map_err(|e| {
            format!(
                "cannot write {}: {e}; trusted for this run only",
                known.path().display()
            )
        })
    }
}

/// The command that forgets the certificate accepted for `server`.
pub fn forget_command(server: &str) -> String {
    format!("chat-tui --forget-server {server}")
}

/// The refusal of a certificate that changed, with both fingerprints and what to do.
pub fn changed(server: &str, old: &str, new: &str) -> String {
    format!(
        "the certificate of {server} has CHANGED: it was {old}, it is now {new}. Someone may be \
         intercepting the connection, or the server has a new certificate: ask its operator \
         (`chat-server fingerprint` prints it). Only if the new one is right, forget the old \
         one with: {}",
        forget_command(server)
    )
}

/// The refusal of a certificate that is not the one given with `--trust-fingerprint`.
pub fn not_given(server: &str, given: &str, new: &str) -> String {
    format!(
        "the certificate of {server} has the fingerprint {new}, not {given} as \
         --trust-fingerprint says: not connecting"
    )
}

/// The refusal of a certificate seen for the first time, in the line mode.
pub fn first_use_refused(server: &str, new: &str) -> String {
    format!(
        "the certificate of {server} is not known yet: its fingerprint is {new}. Check it with \
         the server's operator (`chat-server fingerprint` prints it), then connect again with \
         --trust-fingerprint {new} (or --trust-on-first-use to accept whatever it is)"
    )
}

/// `chat-tui --forget-server SERVER`: what to print, and whether it went well.
pub fn forget(known: Option<&KnownServers>, server: &str) -> Result<String, String> {
    let Some(known) = known else {
        return Err("no configuration folder: nothing is remembered".to_owned());
    };
    let path = known.path().display();
    match known.forget(server) {
        Ok(true) => Ok(format!(
            "forgot the certificate of {server} (in {path}); the next connection asks again"
        )),
        Ok(false) => Err(format!("{server} is not in {path}")),
        Err(e) => Err(format!("cannot update {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(dir: &std::path::Path) -> Trust {
        Trust {
            known: Some(KnownServers::at(dir.join("known_servers"))),
            ..Trust::default()
        }
    }

    #[test]
    fn first_use_then_known_then_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = trust(dir.path());
        assert_eq!(
            t.security("h:1"),
            Security::Tls { pinned: None },
            "nothing known yet"
        );
        assert_eq!(t.judge("h:1"), Verdict::FirstUse);
        t.accept("h:1", "SHA256:one").expect("remember");
        // A later run reads it back.
        let later = trust(dir.path());
        assert_eq!(later.pinned("h:1").as_deref(), Some("SHA256:one"));
        assert_eq!(
            later.judge("h:1"),
            Verdict::Changed {
                old: "SHA256:one".into()
            }
        );
        assert_eq!(later.pinned("h:2"), None, "one line per host:port");
    }

    #[test]
    fn a_given_fingerprint_wins_over_the_known_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = trust(dir.path());
        t.accept("h:1", "SHA256:old").expect("remember");
        t.given = Some("SHA256:new".into());
        assert_eq!(t.pinned("h:1").as_deref(), Some("SHA256:new"));
        assert_eq!(
            t.judge("h:1"),
            Verdict::NotGiven {
                given: "SHA256:new".into()
            }
        );
        assert_eq!(
            trust(dir.path()).pinned("h:1").as_deref(),
            Some("SHA256:old"),
            "a given fingerprint is for this run only"
        );
    }

    #[test]
    fn plaintext_means_no_tls_and_forgetting_says_what_happened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = trust(dir.path());
        t.plaintext = true;
        assert_eq!(t.security("h:1"), Security::Plain);
        t.accept("h:1", "SHA256:x").expect("remember");
        let said = forget(t.known.as_ref(), "h:1").expect("forgotten");
        assert!(said.contains("forgot the certificate of h:1"), "{said}");
        let said = forget(t.known.as_ref(), "h:1").expect_err("not known");
        assert!(said.contains("h:1 is not in"), "{said}");
    }
}
