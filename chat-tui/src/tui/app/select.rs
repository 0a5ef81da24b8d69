//! Picking a message in the tab on screen: the selection (Alt-Up and Alt-Down move it; `r`,
//! `e`, `d` and `+` put `/reply`, `/edit`, `/delete` or `/react` for it on the input line)
//! and `/search` (its matches are selected in turn with `n` and `N`). The selected message is
//! highlighted and shows its id; the view scrolls to keep it on screen.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Anchor, App, Effect, Entry, EntryKind};
use crate::tui::entry::View;

/// A search of the tab on screen.
#[derive(Debug)]
pub struct Search {
    /// The pattern, as typed.
    pattern: String,
    /// The ids of the messages that match, oldest first.
    matches: Vec<u64>,
}

impl App {
    /// How `entry` of the tab on screen is drawn: the time now, and whether it is selected.
    pub fn entry_view(&self, entry: &Entry) -> View {
        View {
            now: self.wall,
            selected: self.selected.is_some() && entry.id == self.selected,
        }
    }

    /// Ends the selection and the search.
    pub(super) fn end_selection(&mut self) {
        self.selected = None;
        self.search = None;
    }

    /// What the status bar says of the selection or the search, if anything.
    pub fn selection_status(&self) -> Option<String> {
        let id = self.selected?;
        let keys = "r reply · e edit · d delete · + react";
        Some(match &self.search {
            // The message pane says what n and N do (older, newer) and that Esc ends it.
            Some(s) => {
                let at = s.matches.iter().position(|m| *m == id).map_or(0, |p| p + 1);
                format!("/{}/ {at} of {} · n N · {keys}", s.pattern, s.matches.len())
            }
            None => format!("#{id}: {keys} · Esc"),
        })
    }

    /// The messages of the tab on screen, oldest first: (sequence number, id).
    fn messages(&self) -> Vec<(u64, u64)> {
        let tab = &self.tabs[self.active];
        (tab.first_seq..)
            .zip(&tab.entries)
            .filter_map(|(seq, e)| match (&e.kind, e.id) {
                (EntryKind::Message { .. }, Some(id)) => Some((seq, id)),
                _ => None,
            })
            .collect()
    }

    /// A key that the selection or the search takes, if it does (`None`: the key goes on to
    /// the input line). Alt-Up and Alt-Down always move the selection; with a selection and
    /// an empty input line, Up and Down move it too, and `r` (or Enter), `e`, `d`, `+`, `n`,
    /// `N` and Esc act on it. Any other key ends it.
    pub(super) fn selection_key(&mut self, key: KeyEvent) -> Option<Vec<Effect>> {
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Up if alt => return Some(self.move_selection(true)),
            KeyCode::Down if alt => return Some(self.move_selection(false)),
            _ => {}
        }
        let id = self.selected?;
        if key.code == KeyCode::Esc {
            self.end_selection();
            return Some(Vec::new());
        }
        if !self.input.is_empty() || !(key.modifiers - KeyModifiers::SHIFT).is_empty() {
            self.end_selection();
            return None;
        }
        let line = match key.code {
            KeyCode::Up => return Some(self.move_selection(true)),
            KeyCode::Down => return Some(self.move_selection(false)),
            KeyCode::Char('n') if self.search.is_some() => return Some(self.next_match(true)),
            KeyCode::Char('N') if self.search.is_some() => return Some(self.next_match(false)),
            KeyCode::Enter | KeyCode::Char('r') => format!("/reply {id} "),
            KeyCode::Char('e') => {
                format!("/edit {id} {}", self.selected_text().unwrap_or_default())
            }
            KeyCode::Char('d') => format!("/delete {id}"),
            KeyCode::Char('+') => format!("/react {id} "),
            _ => {
                self.end_selection();
                return None;
            }
        };
        self.end_selection();
        self.set_input(&line);
        Some(Vec::new())
    }

    /// The text of the selected message.
    fn selected_text(&self) -> Option<String> {
        let id = self.selected?;
        self.tabs[self.active]
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Message { text, .. } if e.id == Some(id) => Some(text.clone()),
                _ => None,
            })
    }

    /// Selects the message before (`older`) or after the selected one; with none selected,
    /// `older` selects the newest. Past the newest, the selection ends.
    fn move_selection(&mut self, older: bool) -> Vec<Effect> {
        let messages = self.messages();
        let at = self
            .selected
            .and_then(|id| messages.iter().position(|(_, m)| *m == id));
        let next = match (at, older) {
            (None, true) => messages.len().checked_sub(1),
            (None, false) => None,
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) => (p + 1 < messages.len()).then_some(p + 1),
        };
        match next {
            Some(p) => {
                self.selected = Some(messages[p].1);
                self.reveal(messages[p].0);
            }
            None => {
                self.end_selection();
                self.tabs[self.active].scroll = None;
            }
        }
        Vec::new()
    }

    /// `/search PATTERN`: selects the newest message of the tab on screen that matches
    /// (its text or its sender), and says how many do.
    pub(super) fn search(&mut self, pattern: &str) -> (Vec<Effect>, bool) {
        let re = match crate::extras::search_regex(pattern) {
            Ok(re) => re,
            Err(why) => return self.refuse(&why),
        };
        let tab = &self.tabs[self.active];
        let matches: Vec<u64> = tab
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Message { from, text, .. } if re.is_match(text) || re.is_match(from) => {
                    e.id
                }
                _ => None,
            })
            .collect();
        let Some(&newest) = matches.last() else {
            self.end_selection();
            self.notice_active(
                &format!("no message in this tab matches /{pattern}/"),
                false,
            );
            return (Vec::new(), false);
        };
        let n = matches.len();
        let noun = if n == 1 {
            "message matches"
        } else {
            "messages match"
        };
        let text = format!("{n} {noun} /{pattern}/: n older · N newer · Esc ends the search");
        self.notice_active(&text, false);
        self.search = Some(Search {
            pattern: pattern.to_owned(),
            matches,
        });
        self.select(newest);
        (Vec::new(), false)
    }

    /// Selects the match before (`older`) or after the selected message.
    fn next_match(&mut self, older: bool) -> Vec<Effect> {
        let (Some(search), Some(id)) = (&self.search, self.selected) else {
            return Vec::new();
        };
        let next = if older {
            search.matches.iter().rev().find(|m| **m < id)
        } else {
            search.matches.iter().find(|m| **m > id)
        };
        match next.copied() {
            Some(m) => self.select(m),
            None => self.dirty = false,
        }
        Vec::new()
    }

    /// Selects message `id` of the tab on screen, scrolled into view.
    fn select(&mut self, id: u64) {
        self.selected = Some(id);
        if let Some((seq, _)) = self.messages().into_iter().find(|(_, m)| *m == id) {
            self.reveal(seq);
        }
    }

    /// Scrolls the tab on screen so that entry `seq` shows (at the bottom, if it did not).
    fn reveal(&mut self, seq: u64) {
        let area = self.message_area();
        let tab = &self.tabs[self.active];
        let Some(last) = tab.last_seq() else { return };
        let bottom = tab.scroll.unwrap_or(Anchor { seq: last, skip: 0 });
        if seq <= bottom.seq {
            let rows: usize = (seq..=bottom.seq)
                .map(|s| self.entry_height(tab, s, area.width))
                .sum();
            if rows.saturating_sub(bottom.skip) <= usize::from(area.height) {
                return; // already on screen
            }
        }
        // Live, when it shows there; else at the bottom of the pane.
        let to_live: usize = (seq..=last)
            .map(|s| self.entry_height(tab, s, area.width))
            .sum();
        let scroll = match self.top_anchor(tab, area) {
            _ if to_live <= usize::from(area.height) => None,
            Some(top) if seq < top.seq => Some(top),
            _ => Some(Anchor { seq, skip: 0 }),
        };
        self.tabs[self.active].scroll = scroll;
    }
}
