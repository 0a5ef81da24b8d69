//! The connect screen: its fields, the keys it takes, and the checks made before connecting
//! (a nickname the server would refuse, or an address without a port, never leaves here).

use std::time::Duration;

use chat_core::names::{validate_nick, validate_relayed_nick};
use chat_core::protocol::Password;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::{CursorMove, TextArea};

use super::input::render_off_screen;
use super::{App, ConnState, Effect, Screen};
use crate::tui::layout::ConnectAreas;

impl App {
    /// A key on the connect screen.
    pub(super) fn form_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Screen::Connect(form) = &mut self.screen else {
            return Vec::new();
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => return vec![Effect::Exit],
            KeyCode::Esc => return vec![Effect::Exit],
            KeyCode::Enter => return self.submit_form(),
            _ if form.connecting => {}
            KeyCode::Tab | KeyCode::Down => form.field = form.field.next(),
            KeyCode::BackTab | KeyCode::Up => form.field = form.field.prev(),
            _ => {
                let field = form.field;
                form.field_mut(field).input(key);
            }
        }
        Vec::new()
    }

    /// Checks the form and, if nothing is wrong, connects (what Enter does there).
    pub(super) fn submit_form(&mut self) -> Vec<Effect> {
        let Screen::Connect(form) = &mut self.screen else {
            return Vec::new();
        };
        if form.connecting {
            return Vec::new();
        }
        let nick = form.nick.lines().concat().trim().to_owned();
        let server = form.server.lines().concat().trim().to_owned();
        let password = Some(form.password.lines().concat())
            .filter(|p| !p.is_empty())
            .map(Password);
        let problem = if nick.is_empty() {
            Some((Field::Nick, "enter a nickname".to_owned()))
        } else if let Err(e) = if nick.starts_with('*') {
            validate_relayed_nick(&nick)
        } else {
            validate_nick(&nick)
        } {
            Some((Field::Nick, format!("nickname not accepted: {e}")))
        } else if server.is_empty() {
            Some((
                Field::Server,
                "enter the server's address, host:port".to_owned(),
            ))
        } else if password.is_some() && nick.starts_with('*') {
            Some((
                Field::Password,
                "guests through a relay (*names) have no account: leave the password empty"
                    .to_owned(),
            ))
        } else if !server.contains(':') {
            Some((
                Field::Server,
                format!("the server's address needs a port, as in {server}:12345"),
            ))
        } else {
            None
        };
        if let Some((field, error)) = problem {
            form.field = field;
            form.error = Some(error);
            return Vec::new();
        }
        form.error = None;
        form.connecting = true;
        self.requested_nick = nick.clone();
        self.nick = nick.clone();
        self.server = server.clone();
        self.password.clone_from(&password);
        self.conn = ConnState::Connecting;
        vec![Effect::Connect {
            server,
            nick,
            password,
            delay: Duration::ZERO,
        }]
    }

    /// Prefills the connect screen's password (from `--password`).
    pub fn set_password(&mut self, password: &str) {
        if let Screen::Connect(form) = &mut self.screen {
            form.password = password_line(password);
        }
    }
}

/// The connect screen's fields (their `Debug` leaves the password out).
pub struct ConnectForm {
    /// Nickname field.
    pub nick: TextArea<'static>,
    /// Server field.
    pub server: TextArea<'static>,
    /// Password field (masked); empty connects as a guest.
    pub password: TextArea<'static>,
    /// Which field has the cursor.
    pub field: Field,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// An attempt is under way.
    pub connecting: bool,
}

impl std::fmt::Debug for ConnectForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectForm")
            .field("nick", &self.nick.lines())
            .field("server", &self.server.lines())
            .field("password", &"<redacted>")
            .field("field", &self.field)
            .field("error", &self.error)
            .field("connecting", &self.connecting)
            .finish()
    }
}

/// A field of the connect form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The nickname asked for.
    Nick,
    /// The account's password (empty: as a guest).
    Password,
    /// The server's (or a relay's) address, `host:port`.
    Server,
}

impl Field {
    fn next(self) -> Field {
        match self {
            Field::Nick => Field::Password,
            Field::Password => Field::Server,
            Field::Server => Field::Nick,
        }
    }

    fn prev(self) -> Field {
        self.next().next()
    }
}

impl ConnectForm {
    /// The form prefilled with `nick` and `server`.
    pub(super) fn new(nick: Option<&str>, server: &str) -> Self {
        ConnectForm {
            nick: single_line(nick.unwrap_or("")),
            server: single_line(server),
            password: password_line(""),
            // With the nickname given, the password is next (Enter alone: as a guest).
            field: if nick.is_some_and(|n| !n.is_empty()) {
                Field::Password
            } else {
                Field::Nick
            },
            error: None,
            connecting: false,
        }
    }

    /// Pastes the first line of `text` into the field that has the cursor (trimmed, except in
    /// the password).
    pub(super) fn paste(&mut self, text: &str) {
        let field = self.field;
        let line = text.split('\n').next().unwrap_or("");
        let line = if field == Field::Password {
            line
        } else {
            line.trim()
        };
        self.field_mut(field).insert_str(line);
    }

    /// Works out where each field is scrolled to, as drawing it in `areas` will show it.
    pub(super) fn lay_out(&mut self, areas: &ConnectAreas) {
        for (field, (_, area)) in [Field::Nick, Field::Password, Field::Server]
            .into_iter()
            .zip(areas.fields)
        {
            render_off_screen(self.field_mut(field), area);
        }
    }

    /// Shows the cursor, in `style`, only in the field that has it.
    pub(super) fn show_cursor(&mut self, style: Style) {
        for field in [Field::Nick, Field::Password, Field::Server] {
            let style = if field == self.field {
                style
            } else {
                Style::default()
            };
            self.field_mut(field).set_cursor_style(style);
        }
    }

    fn field_mut(&mut self, field: Field) -> &mut TextArea<'static> {
        match field {
            Field::Nick => &mut self.nick,
            Field::Password => &mut self.password,
            Field::Server => &mut self.server,
        }
    }
}

fn password_line(text: &str) -> TextArea<'static> {
    let mut t = single_line(text);
    t.set_mask_char('•');
    t
}

fn single_line(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_owned()]);
    t.set_cursor_line_style(Style::default());
    t.set_style(Style::default().add_modifier(Modifier::UNDERLINED));
    t.move_cursor(CursorMove::End);
    t
}
