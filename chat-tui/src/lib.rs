//! The chat suite's terminal client. This build has the line mode (`--plain`): see [`line`].
//! The pieces are a library so that tests can drive them without a terminal.

pub mod command;
pub mod event;
pub mod line;
