//! What identifies a connection to the hub, and what its protocol version lets the hub send it.

use chat_core::protocol::{DisconnectReason, ErrorCode};

/// Identifies one connection for its whole life.
pub(crate) type ConnId = u64;

/// What a connection's protocol version understands, derived once when it is admitted, so
/// that the hub asks a question ("does it know rooms?") instead of comparing version numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    version: u16,
}

impl Caps {
    /// The capabilities of protocol `version`.
    pub(crate) fn new(version: u16) -> Self {
        Caps { version }
    }

    /// Rooms besides the lobby: `Entered`, `Parted`, `Topic`, `Rooms`, and a room's recent
    /// messages as `History` (version 2). A version 1 client knows only the lobby.
    pub(crate) fn rooms(self) -> bool {
        self.version >= 2
    }

    /// Accounts' frames: `Registered`, `Queued`, the `Registered` nickname change, and kept
    /// private messages as `Offline` pages acknowledged with `AckOffline` (version 2).
    pub(crate) fn accounts(self) -> bool {
        self.version >= 2
    }

    /// Moderation, nickname changes, away messages and `whois`: `Moderation`, `Bans`,
    /// `NickChanged`, `Away`, `Ops`, `Whois` (version 4).
    pub(crate) fn moderation(self) -> bool {
        self.version >= 4
    }

    /// Edits and reactions: `Edited`, `Reactions` (version 6).
    pub(crate) fn message_ops(self) -> bool {
        self.version >= 6
    }

    /// Mentions since the previous login (version 7): only such a login moves where the next
    /// one's mentions start (an older client, a bot, cannot ask for them).
    pub(crate) fn mentions(self) -> bool {
        self.version >= 7
    }

    /// The protocol version.
    pub(crate) fn version(self) -> u16 {
        self.version
    }

    /// `reason` as this connection can decode it in a `Bye`.
    pub(crate) fn reason(self, reason: DisconnectReason) -> DisconnectReason {
        reason.bye_for_version(self.version)
    }

    /// `code` as this connection can decode it.
    pub(crate) fn code(self, code: ErrorCode) -> ErrorCode {
        code.for_version(self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_knows_only_the_lobby_and_the_first_reasons() {
        let old = Caps::new(1);
        assert!(!old.rooms() && !old.accounts());
        assert_eq!(
            old.reason(DisconnectReason::LoggedInElsewhere),
            DisconnectReason::LoggedInElsewhere.for_version(1)
        );
        let new = Caps::new(2);
        assert!(new.rooms() && new.accounts());
    }
}
