//! Scrolling a tab's history by rows (PageUp/PageDown, the mouse wheel), against the same
//! layout and the same row counts the drawing code uses, so a page is a pane's height.

use ratatui::crossterm::event::{MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::{Anchor, App, Focus, Tab};
use crate::tui::entry::entry_height;
use crate::tui::layout::{Panes, layout};
use crate::tui::wrap::width as text_width;

/// Rows scrolled by one mouse-wheel step.
const WHEEL_ROWS: usize = 3;

impl App {
    /// The mouse: the wheel scrolls; nothing else changes anything.
    pub(super) fn mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_up(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.scroll_down(WHEEL_ROWS),
            _ => self.dirty = false,
        }
    }

    /// What the main screen's layout depends on besides the terminal's size.
    pub fn panes(&self) -> Panes {
        Panes {
            input_lines: self.input.lines().len(),
            roster_wanted: self.show_roster,
            roster_focused: self.focus == Focus::Roster,
            widest_nick: self
                .roster
                .iter()
                .map(|u| text_width(&u.nick))
                .max()
                .unwrap_or(0),
        }
    }

    /// The message pane, as laid out for the current size.
    pub fn message_area(&self) -> Rect {
        layout(Rect::new(0, 0, self.size.0, self.size.1), self.panes()).messages
    }

    /// Rows scrolled by PageUp and PageDown: the pane's height less one, for context.
    pub(super) fn page(&self) -> usize {
        usize::from(self.message_area().height.saturating_sub(1)).max(1)
    }

    /// Rows of entry `seq` of `tab` at `width` columns, the day line and the unread marker
    /// above it included.
    pub(super) fn entry_height(&self, tab: &Tab, seq: u64, width: u16) -> usize {
        let entry = &tab.entries[(seq - tab.first_seq) as usize];
        let day = tab.day_change(seq, self.today(), self.opts.utc);
        let view = self.entry_view(entry);
        entry_height(entry, &self.opts, width, view)
            + usize::from(day.is_some())
            + usize::from(tab.marker_above(seq))
    }

    /// Scrolls the tab on screen back by `rows`, no further than its oldest row at the top.
    pub(super) fn scroll_up(&mut self, rows: usize) {
        let area = self.message_area();
        let tab = &self.tabs[self.active];
        let Some(last) = tab.last_seq() else {
            return;
        };
        let mut anchor = tab.scroll.unwrap_or(Anchor { seq: last, skip: 0 });
        // The pane may have changed width since the anchor was set: rows may have gone.
        let h = self.entry_height(tab, anchor.seq, area.width);
        anchor.skip = anchor.skip.min(h.saturating_sub(1));
        let mut rows_left = rows;
        while rows_left > 0 {
            let h = self.entry_height(tab, anchor.seq, area.width);
            if anchor.skip + rows_left < h {
                anchor.skip += rows_left;
                rows_left = 0;
            } else if anchor.seq > tab.first_seq {
                rows_left -= h - anchor.skip;
                anchor.seq -= 1;
                anchor.skip = 0;
            } else {
                anchor.skip = h.saturating_sub(1);
                break;
            }
        }
        // Never scroll past the point where the oldest line is at the top of the pane.
        let top = self.top_anchor(tab, area);
        let anchor = match top {
            Some(top)
                if (anchor.seq, std::cmp::Reverse(anchor.skip))
                    < (top.seq, std::cmp::Reverse(top.skip)) =>
            {
                top
            }
            Some(_) => anchor,
            None => return, // everything fits: nothing to scroll
        };
        self.tabs[self.active].scroll = Some(anchor);
    }

    /// The anchor that puts the oldest row at the top of the pane; `None` when the whole
    /// history fits.
    pub(super) fn top_anchor(&self, tab: &Tab, area: Rect) -> Option<Anchor> {
        let mut rows = usize::from(area.height);
        let mut seq = tab.first_seq;
        let last = tab.last_seq()?;
        loop {
            let h = self.entry_height(tab, seq, area.width);
            if h >= rows {
                let anchor = Anchor {
                    seq,
                    skip: h - rows,
                };
                return (seq < last || anchor.skip > 0).then_some(anchor);
            }
            rows -= h;
            if seq == last {
                return None;
            }
            seq += 1;
        }
    }

    /// Scrolls the tab on screen forward by `rows`, back to live at the newest row.
    pub(super) fn scroll_down(&mut self, rows: usize) {
        let area = self.message_area();
        let tab = &self.tabs[self.active];
        let (Some(mut anchor), Some(last)) = (tab.scroll, tab.last_seq()) else {
            return;
        };
        let h = self.entry_height(tab, anchor.seq, area.width);
        anchor.skip = anchor.skip.min(h.saturating_sub(1));
        let mut rows_left = rows;
        loop {
            if anchor.skip >= rows_left {
                anchor.skip -= rows_left;
                break;
            }
            rows_left -= anchor.skip;
            if anchor.seq >= last {
                self.tabs[self.active].scroll = None;
                return;
            }
            anchor.seq += 1;
            anchor.skip = self.entry_height(tab, anchor.seq, area.width);
        }
        let live = anchor.seq >= last && anchor.skip == 0;
        self.tabs[self.active].scroll = (!live).then_some(anchor);
    }
}
