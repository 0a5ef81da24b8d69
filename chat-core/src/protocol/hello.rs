//! The handshake's frames: `Hello` (whose layout never changes), the relay's `RelayHello`, and
//! `Password`, which no `Debug` output shows.

use serde::{Deserialize, Serialize};

/// The handshake frame. Its layout never changes.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub version: u16,
    /// The nickname the client asks for.
    pub nick: String,
    /// Client software name and version, e.g. `chat-tui/0.1.0`.
    pub client: String,
    /// Account password: logs in to the account registered under `nick`. `None` connects as
    /// a guest.
    pub password: Option<String>,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("version", &self.version)
            .field("nick", &self.nick)
            .field("client", &self.client)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A password in a frame: encoded as a plain string, never shown by `Debug` (so that no log
/// or error message can contain it), and wiped from memory when dropped.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl Drop for Password {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password(s.to_owned())
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password(s)
    }
}

/// Sent by a relay before the guest's `Hello`.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHello {
    /// The secret shared between the relay and the server.
    pub secret: String,
    /// The guest's real address (`ip:port`), used for logging and rate limiting.
    pub peer_addr: String,
    /// Relay software name and version.
    pub relay: String,
}

impl std::fmt::Debug for RelayHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHello")
            .field("secret", &"<redacted>")
            .field("peer_addr", &self.peer_addr)
            .field("relay", &self.relay)
            .finish()
    }
}
