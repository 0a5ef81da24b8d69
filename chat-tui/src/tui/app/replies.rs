//! What `/reply`, `/edit`, `/react`, `/temp`, `/search` and `/mentions` do in the full-screen
//! client.

use chat_core::names::validate_text;
use chat_core::protocol::{Body, ClientFrame};

use super::{App, Effect, TabKind};
use crate::command::MessageCommand;

impl App {
    /// Carries out a command about a message typed in `tab`; returns the effects and whether
    /// to keep the input line.
    pub(super) fn message_command(
        &mut self,
        m: MessageCommand,
        tab: TabKind,
    ) -> (Vec<Effect>, bool) {
        let m = match m.resolved(|nick| self.last_from(nick)) {
            Ok(m) => m,
            Err(why) => return self.refuse(&why),
        };
        if let Some(why) = m.unsupported(self.server_version) {
            return self.refuse(&why);
        }
        let attrs = m.attrs();
        match m {
            MessageCommand::Reply { text, .. } => self.send_to_tab(tab, Body::Text(text), attrs),
            MessageCommand::Temp { text, .. } => self.send_to_tab(tab, Body::Text(text), attrs),
            MessageCommand::Edit { id, text } => {
                if let Err(e) = validate_text(&text, self.max_message_len()) {
                    return self.refuse(&format!("not edited: {e}"));
                }
                self.request(ClientFrame::Edit { id, text })
            }
            MessageCommand::React { id, emoji } => self.request(ClientFrame::React { id, emoji }),
            MessageCommand::Search(pattern) => self.search(&pattern),
            MessageCommand::ServerSearch(pattern) => self.server_search(pattern),
            MessageCommand::Mentions { more } => self.mentions(more),
            // Made into `Reply` and `React` above.
            MessageCommand::ReplyLatest { .. } | MessageCommand::ReactLatest { .. } => {
                (Vec::new(), false)
            }
        }
    }

    /// The longest message the server takes, in bytes.
    pub(super) fn max_message_len(&self) -> usize {
        self.limits
            .as_ref()
            .map_or(4096, |l| l.max_message_len as usize)
    }
}
