//! Which protocol version introduced each client frame.

use super::ClientFrame;

impl ClientFrame {
    /// The protocol version that introduced this frame.
    pub fn since_version(&self) -> u16 {
        match self {
            ClientFrame::Hello(_)
            | ClientFrame::RelayHello(_)
            | ClientFrame::Send(_)
            | ClientFrame::Who { .. }
            | ClientFrame::Ping { .. }
            | ClientFrame::Quit { .. } => 1,
            ClientFrame::Join { .. }
            | ClientFrame::Part { .. }
            | ClientFrame::ListRooms
            | ClientFrame::SetTopic { .. }
            | ClientFrame::History { .. }
            | ClientFrame::Register { .. }
            | ClientFrame::SetPassword { .. }
            | ClientFrame::AckOffline { .. } => 2,
            ClientFrame::Kick { .. }
            | ClientFrame::Ban { .. }
            | ClientFrame::Unban { .. }
            | ClientFrame::ListBans
            | ClientFrame::Mute { .. }
            | ClientFrame::Unmute { .. }
            | ClientFrame::Op { .. }
            | ClientFrame::LockTopic { .. }
            | ClientFrame::Nick { .. }
            | ClientFrame::Away { .. }
            | ClientFrame::Whois { .. }
            | ClientFrame::Delete { .. } => 4,
            ClientFrame::FileOffer { .. }
            | ClientFrame::FileAnswer { .. }
            | ClientFrame::FileChunk { .. }
            | ClientFrame::FileAck { .. }
            | ClientFrame::FileCancel { .. }
            | ClientFrame::FileDone { .. } => 5,
            ClientFrame::Edit { .. }
            | ClientFrame::React { .. }
            | ClientFrame::PrivateHistory { .. }
            | ClientFrame::Search { .. } => 6,
            ClientFrame::Mentions { .. } => 7,
        }
    }
}
