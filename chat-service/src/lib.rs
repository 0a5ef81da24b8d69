//! What the chat suite's network services (the server and the relay) share, and the clients
//! do not: listening and accepting, the signals that stop them, secrets, JSON Lines log files,
//! the console's logging, and TLS certificates. `chat-core` stays the protocol, the codec and the client.

#[cfg(feature = "clap")]
pub mod config_file;
pub mod console;
pub mod jsonl;
pub mod listen;
#[cfg(feature = "clap")]
pub mod manual;
pub mod secret;
pub mod signals;
pub mod tls;

pub use listen::{ListenError, Listeners, accept, bind_one, parse_listen, parse_listen_all};
pub use secret::Secret;
pub use signals::ShutdownSignals;
