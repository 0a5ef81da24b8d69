//! The full-screen client: [`app`] holds the state and decides, [`ui`] draws, [`net`] talks to
//! the server, [`run`] ties them to a real terminal.

pub mod app;
pub mod config;
pub mod entry;
pub mod layout;
pub mod net;
pub mod run;
pub mod theme;
pub mod ui;
pub mod wrap;
