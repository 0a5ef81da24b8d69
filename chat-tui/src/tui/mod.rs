//! The full-screen client: [`app`] holds the state and decides, [`ui`] draws, [`net`] talks to
//! the server, [`run`] ties them to a real terminal. What the app and the drawing code both
//! need takes no `App` and lives apart, so that `ui` depends on `app` and never the other way:
//! [`layout`] (where things go), [`entry`] (a history entry and the rows it takes), [`theme`]
//! (styles) and [`wrap`] (wrapping by display width). [`config`] holds the settings.

pub mod app;
pub mod config;
pub mod entry;
pub mod layout;
pub mod net;
pub mod run;
pub mod theme;
pub mod ui;
pub mod wrap;
