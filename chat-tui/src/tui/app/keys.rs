//! The main screen's keys: the ones that work everywhere (help, tabs, paging, focus), then the
//! roster's or the input line's, whichever has the keyboard ([`Focus`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, Effect};

impl App {
    /// A key on the main screen.
    pub(super) fn main_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.quit(String::new());
        }
        if self.help {
            if matches!(key.code, KeyCode::Esc | KeyCode::F(1) | KeyCode::Char('q')) {
                self.help = false;
            }
            return Vec::new();
        }
        match key.code {
            KeyCode::F(1) => {
                self.help = true;
                return Vec::new();
            }
            KeyCode::F(2) => {
                self.show_roster = !self.show_roster;
                return Vec::new();
            }
            KeyCode::Char(c @ '0'..='9') if alt => {
                let n = if c == '0' {
                    10
                } else {
                    c as usize - '0' as usize
                };
                self.select_tab(n - 1);
                return Vec::new();
            }
            KeyCode::Char('a') if alt => {
                self.next_active_tab();
                return Vec::new();
            }
            KeyCode::Char('n') if ctrl => {
                self.select_tab((self.active + 1) % self.tabs.len());
                return Vec::new();
            }
            KeyCode::Char('p') if ctrl => {
                self.select_tab((self.active + self.tabs.len() - 1) % self.tabs.len());
                return Vec::new();
            }
            // Alt-W as in weechat: Ctrl-W is readline's (and so everyone's) word rub-out.
            KeyCode::Char('w') if alt => return self.close_tab(self.active),
            KeyCode::PageUp => {
                self.scroll_up(self.page());
                return Vec::new();
            }
            KeyCode::PageDown => {
                self.scroll_down(self.page());
                return Vec::new();
            }
            KeyCode::End if ctrl || self.tabs[self.active].scroll.is_some() => {
                self.tabs[self.active].scroll = None;
                return Vec::new();
            }
            KeyCode::BackTab => {
                self.toggle_focus();
                return Vec::new();
            }
            _ => {}
        }
        match self.focus {
            Focus::Roster => self.roster_key(key),
            Focus::Input => self.input_key(key),
        }
    }

    /// A key while the roster has the keyboard: move, open a private tab, or type.
    fn roster_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let last = self.shown_roster().len().saturating_sub(1);
        match key.code {
            KeyCode::Up => self.roster_selected = self.roster_selected.saturating_sub(1),
            KeyCode::Down => self.roster_selected = (self.roster_selected + 1).min(last),
            KeyCode::Home => self.roster_selected = 0,
            KeyCode::End => self.roster_selected = last,
            KeyCode::Tab | KeyCode::Esc => self.focus = Focus::Input,
            KeyCode::Enter => {
                if let Some(user) = self.shown_roster().get(self.roster_selected) {
                    let nick = user.nick.clone();
                    self.query(&nick);
                }
                self.focus = Focus::Input;
            }
            KeyCode::Char(c @ ('w' | 'i' | 'k' | 'm' | 'b'))
                if key.modifiers.is_empty() || key.modifiers == KeyModifiers::SHIFT =>
            {
                return self.roster_action(c.to_ascii_lowercase());
            }
            KeyCode::Char(_) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                // Typing goes to the input line.
                self.focus = Focus::Input;
                return self.input_key(key);
            }
            _ => self.dirty = false,
        }
        Vec::new()
    }

    /// A key on the selected roster entry: `w` asks who they are, `i` ignores them (or no
    /// longer), `k`, `m` and `b` put the kick, mute or ban on the input line, for Enter to
    /// confirm (after adding a reason or a duration).
    fn roster_action(&mut self, key: char) -> Vec<Effect> {
        let Some(nick) = self
            .shown_roster()
            .get(self.roster_selected)
            .map(|u| u.nick.clone())
        else {
            return Vec::new();
        };
        match key {
            'w' => {
                return self
                    .command(crate::command::Command::Mod(
                        crate::command::ModCommand::Whois(nick),
                    ))
                    .0;
            }
            'i' if self.ignored.contains(&nick) => {
                return self.command(crate::command::Command::Unignore(nick)).0;
            }
            'i' => return self.command(crate::command::Command::Ignore(Some(nick))).0,
            _ => {}
        }
        let (line, what) = match key {
            'k' => (format!("/kick {nick} "), "kick"),
            'm' => (format!("/mute {nick} 10m "), "mute"),
            _ => (format!("/ban {nick} 1d "), "ban"),
        };
        self.set_input(&line);
        self.focus = Focus::Input;
        let text = format!("Enter to {what} {nick} (add a reason first; Ctrl-U cancels)");
        self.notice_active(&text, false);
        Vec::new()
    }

    /// A key while the input line has the keyboard: send, complete, recall, or edit.
    fn input_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        if key.code != KeyCode::Tab {
            self.input.cancel_completion();
        }
        if let Some(effects) = self.selection_key(key) {
            return effects;
        }
        match key.code {
            KeyCode::Enter if alt || shift => {
                self.input.new_line();
                Vec::new()
            }
            KeyCode::Enter => self.submit(),
            KeyCode::Tab => {
                // With no word to complete, Tab on an empty line goes to the roster; after
                // other text it does nothing (so half-typed text is never sent elsewhere).
                if !self.complete() && self.input.is_empty() {
                    self.toggle_focus();
                }
                Vec::new()
            }
            KeyCode::Up if self.input.on_first_line() => {
                self.input.history_back();
                Vec::new()
            }
            KeyCode::Down if self.input.on_last_line() => {
                self.input.history_forward();
                Vec::new()
            }
            _ => {
                self.input.edit(key);
                Vec::new()
            }
        }
    }

    /// Completes the nickname before the cursor from everyone online and the private and group
    /// tabs;
    /// false when there is no word to complete.
    fn complete(&mut self) -> bool {
        let privates = self
            .tabs
            .iter()
            .flat_map(|t| t.kind.people().iter().cloned());
        let names = self.roster.iter().map(|u| u.nick.clone()).chain(privates);
        // After `/file NICK `, Tab completes a path instead.
        if let Some(done) = self.input.complete_path() {
            return done;
        }
        // After a `:` and two letters, an emoji shortcode.
        if let Some(done) = self.input.complete_emoji() {
            return done;
        }
        self.input.complete(names, &self.nick)
    }

    /// Moves the keyboard between the input line and the roster.
    fn toggle_focus(&mut self) {
        self.input.cancel_completion();
        self.focus = match self.focus {
            Focus::Input => {
                self.roster_selected = self
                    .roster_selected
                    .min(self.shown_roster().len().saturating_sub(1));
                Focus::Roster
            }
            Focus::Roster => Focus::Input,
        };
    }
}

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The input line.
    Input,
    /// The roster sidebar.
    Roster,
}
