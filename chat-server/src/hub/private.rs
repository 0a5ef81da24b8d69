//! Reading what is stored for one user: the pages of an account's private conversations
//! (version 6), searches of the messages it may read (6), and the messages that mention it
//! since its previous login (7).

use chat_core::protocol::{
    ChatMessage, ErrorCode, ErrorFrame, MAX_SEARCH_RESULTS, MessageId, ServerFrame,
};

use super::Hub;
use super::cmd::Cmd;
use super::conn::ConnId;
use super::replay::{newest_that_fit, size};
use crate::config::MAX_HISTORY_PAGE;
use crate::search::Query;
use crate::store::{SearchScope, Store, StoreError};

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
        let asked = with.clone();
        self.send_page(
            conn,
            None,
            move |store| store.private_history(&account, &asked, before, limit),
            move |messages, more| ServerFrame::PrivateHistory {
                with,
                messages,
                more,
            },
        );
    }

    /// Sends `conn` a page of history that `read` gets from the store (oldest first, and
    /// whether older messages exist), cut to the newest that fit its queue and followed by
    /// their notes (edits, reactions) as frames for `room` (`None`: private); `frame` makes
    /// the page's frame.
    pub(super) fn send_page(
        &mut self,
        conn: ConnId,
        room: Option<String>,
        read: impl FnOnce(&mut dyn Store) -> Result<(Vec<ChatMessage>, bool), StoreError>
        + Send
        + 'static,
        frame: impl FnOnce(Vec<ChatMessage>, bool) -> ServerFrame + Send + 'static,
    ) {
        let budget = self.history_budget();
        let queued = self.durable.read(move |store| {
            let page = read(store).and_then(|(messages, more)| {
                fit_page(store, messages, more, budget, room.as_deref())
            });
            match page {
                Ok((messages, more, notes)) => Cmd::HistoryPage {
                    conn,
                    frame: frame(messages, more),
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

impl Hub {
    /// Searches, on the store thread, the stored messages of the rooms `conn` is in and of its
    /// account's private conversations.
    pub(super) fn search(
        &mut self,
        conn: ConnId,
        query: Query,
        before: Option<MessageId>,
        limit: u32,
    ) {
        let pattern = query.pattern.clone();
        self.look_up(conn, query, before, limit, move |messages, next| {
            ServerFrame::Found {
                pattern,
                messages,
                next,
            }
        });
    }

    /// Lists the stored messages that mention `conn`'s account since its previous login.
    pub(super) fn mentions(&mut self, conn: ConnId, before: Option<MessageId>, limit: u32) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let Some(account) = member.account_key() else {
            let message = "mentions are listed for accounts only (a guest's nickname may have \
                           been someone else's): /register PASSWORD makes this nickname yours"
                .to_owned();
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        };
        let since = member.previous_login;
        // The nickname as registered: the folded key can differ from it beyond case (`İ`).
        let nick = self.accounts.nick(&account).cloned().unwrap_or(account);
        let Ok(query) = Query::mentioning(&nick, since.map(|l| l.first_id)) else {
            // A nickname without a letter or digit (`__`) is not a word anyone writes.
            let since = since.map(|l| l.at);
            let frame = ServerFrame::Mentions {
                since,
                messages: Vec::new(),
                next: None,
            };
            self.push_to(conn, &frame);
            return;
        };
        let since = since.map(|l| l.at);
        self.look_up(conn, query, before, limit, move |messages, next| {
            ServerFrame::Mentions {
                since,
                messages,
                next,
            }
        });
    }

    /// Looks `query` up, on the store thread, in the stored messages of the rooms `conn` is
    /// in and of its account's private conversations; `answer` makes the frame of what it
    /// found, newest first, and where to go on.
    fn look_up(
        &mut self,
        conn: ConnId,
        query: Query,
        before: Option<MessageId>,
        limit: u32,
        answer: impl FnOnce(Vec<ChatMessage>, Option<MessageId>) -> ServerFrame + Send + 'static,
    ) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let scope = SearchScope {
            rooms: self
                .rooms
                .iter()
                .filter(|(_, r)| r.has(conn))
                .map(|(key, r)| (key.clone(), r.name.clone()))
                .collect(),
            account: member.account_key(),
        };
        if !self.durable.exists() {
            let frame = answer(Vec::new(), None);
            self.push_to(conn, &frame);
            return;
        }
        let limit = (limit as usize).clamp(1, MAX_SEARCH_RESULTS as usize);
        let budget = self.history_budget();
        let queued = self.durable.read(move |store| {
            let found = store
                .search(&scope, &query, before, limit)
                .map(|(mut messages, next)| {
                    // Newest first: what fits of the newest, the rest found again from `next`.
                    // (Their edits and reactions are not sent: the matches are a list to read.)
                    let fit = newest_that_fit(messages.iter().rev().map(size), budget);
                    if fit == messages.len() {
                        return (messages, next);
                    }
                    messages.truncate(fit);
                    let next = messages.last().map(|m| m.id);
                    (messages, next)
                });
            match found {
                Ok((messages, next)) => Cmd::HistoryPage {
                    conn,
                    frame: answer(messages, next),
                    notes: Vec::new(),
                },
                Err(e) => history_error(conn, &e),
            }
        });
        if !queued {
            self.busy(conn, "search");
        }
    }
}

/// A page of history read from the store, cut to the newest messages that fit in `budget`
/// bytes, with `more` true if any were cut; and the notes (edits, reactions) of what is left,
/// as frames for `room` (`None`: private).
fn fit_page(
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
fn history_error(conn: ConnId, e: &StoreError) -> Cmd {
    Cmd::Reply {
        conn,
        frame: ServerFrame::Error(ErrorFrame {
            tag: None,
            code: ErrorCode::Busy,
            message: format!("could not read the history: {e}"),
        }),
    }
}
