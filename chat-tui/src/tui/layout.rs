//! Where everything goes on screen, as pure functions of the terminal's size and a few facts
//! about the state ([`Panes`]). The app asks how big the message pane is (to page) and where
//! its text fields are (to scroll them to the cursor); the drawing code puts things there.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Padding};

/// Below this width the roster is hidden (unless it has the focus).
pub const ROSTER_MIN_WIDTH: u16 = 60;
/// The input line grows up to this many rows.
pub const INPUT_MAX_ROWS: u16 = 5;

/// What the main screen's layout depends on besides the terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// Lines of text in the input line (it grows with them up to [`INPUT_MAX_ROWS`] rows).
    pub input_lines: usize,
    /// The roster sidebar is wanted (F2 toggles): shown when the terminal is wide enough.
    pub roster_wanted: bool,
    /// The roster has the keyboard: shown whatever the width.
    pub roster_focused: bool,
    /// Display width of the widest nickname online; the sidebar's width follows it.
    pub widest_nick: usize,
}

/// Where everything goes on the main screen.
#[derive(Debug, Clone, Copy)]
pub struct Areas {
    /// The tab bar, at the top.
    pub tabs: Rect,
    /// The history of the tab on screen.
    pub messages: Rect,
    /// The roster sidebar, when it shows.
    pub roster: Option<Rect>,
    /// The status line.
    pub status: Rect,
    /// The input line, at the bottom.
    pub input: Rect,
}

/// Lays out the main screen.
pub fn layout(area: Rect, panes: Panes) -> Areas {
    let input_rows = (panes.input_lines as u16).clamp(1, INPUT_MAX_ROWS);
    let [tabs, body, status, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(input_rows),
    ])
    .areas(area);
    let roster_visible =
        panes.roster_focused || (panes.roster_wanted && area.width >= ROSTER_MIN_WIDTH);
    let (messages, roster) = if roster_visible {
        let w = (panes.widest_nick.min(40) as u16 + 3)
            .clamp(14, 24)
            .min(area.width / 2);
        let [m, r] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(w)]).areas(body);
        (m, Some(r))
    } else {
        (body, None)
    };
    Areas {
        tabs,
        messages,
        roster,
        status,
        input,
    }
}

/// Where everything goes on the connect screen.
#[derive(Debug, Clone, Copy)]
pub struct ConnectAreas {
    /// The box, centred.
    pub popup: Rect,
    /// The label and the text field of the nickname, password and server rows, in that order.
    pub fields: [(Rect, Rect); 3],
    /// Why the last attempt failed, or what to do.
    pub message: Rect,
    /// The keys, at the bottom of the box.
    pub keys: Rect,
}

/// The connect screen's box, without its title (the title does not move what is inside).
pub fn connect_block() -> Block<'static> {
    Block::bordered().padding(Padding::horizontal(1))
}

/// Lays out the connect screen.
pub fn connect_layout(area: Rect) -> ConnectAreas {
    let popup = centered(area, 64, 11);
    let inner = connect_block().inner(popup);
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .split(inner);
    let field = |row: Rect| {
        let [label, text] =
            Layout::horizontal([Constraint::Length(11), Constraint::Fill(1)]).areas(row);
        (label, text)
    };
    ConnectAreas {
        popup,
        fields: [field(rows[1]), field(rows[2]), field(rows[3])],
        message: rows[4],
        keys: rows[6],
    }
}

/// A `w` × `h` box in the middle of `area` (smaller if `area` is).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
