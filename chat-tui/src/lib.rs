//! The chat suite's terminal client: the full-screen interface ([`tui`]) and the line mode
//! for scripts (`--plain`, [`line`]).
//! The pieces are a library so that tests can drive them without a terminal.

pub mod command;
pub mod emoji;
pub mod extras;
pub mod files;
pub mod ignore;
pub mod line;
pub mod line_event;
pub mod sanitize;
pub mod trust;
pub mod tui;
