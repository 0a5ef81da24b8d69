//! Styles, with or without colour, and the colour of each nickname: shared by the drawing code
//! and by the rows of history entries.

use chat_core::names::fold;
use ratatui::style::{Color, Modifier, Style};

use super::config::Options;

/// Styles, with or without colour.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// The styles for these settings (colour off when `NO_COLOR` is set).
    pub fn of(opts: &Options) -> Self {
        Theme { color: opts.color }
    }

    /// A foreground colour, or nothing without colours.
    pub fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    /// What matters less: times, separators, notices.
    pub fn dim(&self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }

    /// An error notice.
    pub fn error(&self) -> Style {
        if self.color {
            Style::default().fg(Color::Red)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        }
    }

    /// The unread marker: seen at a glance, as an error is.
    pub fn marker(&self) -> Style {
        self.error()
    }

    /// The status line and the active tab's label.
    pub fn bar(&self) -> Style {
        if self.color {
            Style::default().bg(Color::Blue).fg(Color::White)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        }
    }

    /// The done part of a progress bar.
    pub fn gauge(&self) -> Style {
        if self.color {
            Style::default().fg(Color::Green)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        }
    }

    /// A nickname, in its own colour.
    pub fn nick(&self, nick: &str) -> Style {
        self.fg(nick_color(nick))
    }

    /// A message that mentions us, and a tab with a mention or a private message.
    pub fn mention(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }
}

/// The colour of a nickname: the same name always gets the same colour.
pub fn nick_color(nick: &str) -> Color {
    const PALETTE: [Color; 12] = [
        Color::Cyan,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Red,
        Color::LightCyan,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightRed,
    ];
    // FNV-1a: stable across runs and platforms.
    let hash = fold(nick).bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    PALETTE[hash as usize % PALETTE.len()]
}
