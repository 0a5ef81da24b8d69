//! What comes from the server: [`App::frame`] sends each frame to the handler of its family,
//! one file each: chat messages and history ([`messages`]), who is online and in which room
//! ([`presence`]), rooms entered, left and listed ([`rooms`]), accounts ([`accounts`]),
//! edits, reactions, deletions and expiries ([`changes`]), and errors, rate limits and
//! goodbyes ([`errors`]).

use chat_core::protocol::ServerFrame;

use super::{App, Effect};

mod accounts;
mod changes;
mod errors;
mod messages;
mod moderation;
mod presence;
mod rooms;

pub use changes::EXPIRED;
pub use messages::mentions;

impl App {
    /// A frame from the server.
    pub(super) fn frame(&mut self, frame: ServerFrame) -> Vec<Effect> {
        match frame {
            ServerFrame::Message(m) => self.show_message(m, false),
            ServerFrame::History {
                room,
                messages,
                more,
            } => self.history(&room, messages, more),
            ServerFrame::PrivateHistory {
                with,
                messages,
                more,
            } => self.private_history(&with, messages, more),
            ServerFrame::Found {
                pattern,
                messages,
                next,
            } => self.found(pattern, messages, next),
            ServerFrame::Mentions {
                since,
                messages,
                next,
            } => self.mentioned(since, messages, next),
            ServerFrame::Offline(messages) => self.offline(messages),
            ServerFrame::Queued { tag, to } => self.queued(tag, &to),
            ServerFrame::Joined { room, user, .. } => self.joined(&room, user),
            ServerFrame::Left {
                room,
                nick,
                reason,
                message,
                ..
            } => self.left(&room, &nick, reason, &message),
            ServerFrame::Roster { room, users } => self.roster_of(&room, users),
            ServerFrame::Entered { room, topic } => self.entered(&room, &topic),
            ServerFrame::Parted { room } => self.parted(&room),
            ServerFrame::Rooms(rooms) => self.rooms(rooms),
            ServerFrame::Topic {
                room, topic, by, ..
            } => self.topic(&room, &topic, &by),
            ServerFrame::Registered { nick } => self.registered(&nick),
            ServerFrame::PasswordChanged => self.password_changed(),
            ServerFrame::Error(e) => self.error(e),
            ServerFrame::RateLimited {
                tag,
                retry_after_ms,
            } => self.rate_limited(tag, retry_after_ms),
            ServerFrame::Bye { reason, message } => self.bye(reason, &message),
            ServerFrame::Moderation(notice) => self.moderated(notice),
            ServerFrame::Bans(bans) => self.bans(bans),
            ServerFrame::NickChanged { old, new, .. } => self.nick_changed(&old, &new),
            ServerFrame::Away { nick, message } => self.away_changed(&nick, message),
            ServerFrame::Ops { room, ops } => self.room_ops(&room, ops),
            ServerFrame::Whois(w) => self.whois(w),
            ServerFrame::Deleted { id, by, .. } => self.deleted(id, &by),
            ServerFrame::Edited { id, text, .. } => self.edited(id, &text),
            ServerFrame::Reactions { id, reactions, .. } => self.reactions(id, &reactions),
            // File frames go to the file agent (the network task routes them), never here.
            ServerFrame::Welcome(_)
            | ServerFrame::Rejected(_)
            | ServerFrame::Pong { .. }
            | ServerFrame::FileOffered { .. }
            | ServerFrame::FileOffer(_)
            | ServerFrame::FileAnswer { .. }
            | ServerFrame::FileChunk { .. }
            | ServerFrame::FileAck { .. }
            | ServerFrame::FileCancelled { .. }
            | ServerFrame::FileDone { .. } => {
                self.dirty = false;
                Vec::new()
            }
        }
    }
}
