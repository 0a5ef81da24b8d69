//! The chat suite's server as a library: [`Server::bind`] then [`Server::run`] with a shutdown
//! future, or [`run`] for both. The binary in `main.rs` only parses flags, sets up logging and
//! wires Ctrl-C / SIGTERM to the shutdown future.
//!
//! Architecture (see docs/architecture.md): one task per connection reads and checks frames
//! ([`session`]) and drains the connection's byte-bounded queue to its socket ([`outbox`]),
//! one hub task owns the chat state and fans messages out ([`hub`]), and a blocking thread
//! appends the event records to the message log ([`eventlog`]); the same records feed the
//! browser monitor ([`monitor`]).

#[doc(hidden)]
pub mod admin;
pub mod bans;
pub mod bench;
pub mod config;
pub mod event;
pub mod eventlog;
mod hub;
pub mod limits;
pub mod login;
pub mod monitor;
mod outbox;
pub mod ratelimit;
pub mod search;
pub mod server;
mod session;
pub mod stats;
pub mod store;
mod wire;

pub use config::{Cli, Config, DbLocation, GuestPolicy};
pub use monitor::MonitorConfig;
pub use server::{MonitorInfo, RunningServer, Server, ServerError, run};
pub use stats::{Stats, StatsSnapshot};
