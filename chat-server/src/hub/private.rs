//! Private history: the pages of an account's stored private conversations (version 6).

use chat_core::protocol::{ChatMessage, ErrorCode, ErrorFrame, MessageId, ServerFrame};

use super::Hub;
use super::cmd::Cmd;
use super::conn::ConnId;
use super::replay::{newest_that_fit, size};
use crate::config::MAX_HISTORY_PAGE;
use crate::store::{Store, StoreError};

impl Hub {
    /// Sends `conn` a page of its account's private conversation with `with`, read by the
    /// store thread. Guests have none: their nickname may have been someone else's.
    pub(super) fn private_history(
        &mut self,
        conn: ConnId,
        with: Vec<String>,
        before: Option<MessageId>,
        limit: u32,
    ) {
        let Some(account) = self.clients.get(&conn).and_then(|m| m.account_key()) else {
            let message = "private history is kept for accounts only: /register PASSWORD \
                           keeps yours from now on"
                .to_owned();
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        };
        if !self.durable.exists() {
            let messages = Vec::new();
            let frame = ServerFrame::PrivateHistory {
                with,
                messages,
                more: false,
            };
            self.push_to(conn, &frame);
            return;
        }
        let limit = (limit as usize).clamp(1, MAX_HISTORY_PAGE);
        let budget = self.history_budget();
        let queued = self.durable.read(move |store| {
            let page = store
                .private_history(&account, &with, before, limit)
                .and_then(|(messages, more)| fit_page(store, messages, more, budget, None));
            match page {
                Ok((messages, more, notes)) => Cmd::HistoryPage {
                    conn,
                    frame: ServerFrame::PrivateHistory {
                        with,
                        messages,
                        more,
                    },
                    notes,
                },
                Err(e) => history_error(conn, &e),
            }
        });
        if !queued {
            self.busy(conn, "read history");
        }
    }
}

/// A page of history read from the store, cut to the newest messages that fit in `budget`
/// bytes, with `more` true if any were cut; and the notes (edits, reactions) of what is left,
/// as frames for `room` (`None`: private).
pub(super) fn fit_page(
    store: &mut dyn Store,
    mut messages: Vec<ChatMessage>,
    more: bool,
    budget: usize,
    room: Option<&str>,
) -> Result<(Vec<ChatMessage>, bool, Vec<ServerFrame>), StoreError> {
    let sizes = messages.iter().map(size);
    let cut = messages.len() - newest_that_fit(sizes, budget);
    messages.drain(..cut);
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    let mut found = store.notes(&ids)?;
    let page: Vec<&ChatMessage> = messages.iter().collect();
    let notes = Hub::notes_frames(room, &page, |id| {
        let at = found.iter().position(|(i, _)| *i == id)?;
        Some(found.swap_remove(at).1)
    });
    Ok((messages, more || cut > 0, notes))
}

/// The answer to a history request the store could not read.
pub(super) fn history_error(conn: ConnId, e: &StoreError) -> Cmd {
    Cmd::Reply {
        conn,
        frame: ServerFrame::Error(ErrorFrame {
            tag: None,
            code: ErrorCode::Busy,
            message: format!("could not read the history: {e}"),
        }),
    }
}
