//! The chat suite's shared core: wire protocol, codec, naming rules, a typed framed connection
//! and the client API. No terminal and no HTTP here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use chat_core::client::{connect, ConnectOptions};
//! use chat_core::protocol::ServerFrame;
//!
//! let mut client = connect("127.0.0.1:12345", &ConnectOptions::new("alice")).await?;
//! println!("connected as {}", client.welcome.nick);
//! client.sender.say("lobby", "hello").await?;
//! while let Some(frame) = client.events.next().await? {
//!     if let ServerFrame::Message(m) = frame {
//!         println!("<{}> {}", m.from, m.body.text());
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod client;
pub mod codec;
pub mod connection;
pub mod files;
pub mod frame;
pub mod names;
pub mod protocol;
pub mod tls;

pub use client::{
    Client, ClientError, ConnectOptions, NetClient, Security, connect, connect_secured,
};
pub use connection::{Connection, FrameReader, FrameWriter};
pub use frame::{FrameCodec, FrameError, encode_frame};
pub use protocol::{ClientFrame, ServerFrame};
