//! Hooks for the benchmarks in `benches/`: the hub's fan-out path without sockets. Not an API:
//! it may change with the hub.

use std::sync::Arc;

use chat_core::protocol::{Body, DEFAULT_ROOM, Outgoing, PROTOCOL_VERSION, Target};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::hub::{Cmd, Hub, JoinRequest};
use crate::outbox::Outbox;
use crate::stats::Stats;

/// A hub with `members` clients in the lobby, whose queues the fixture empties itself.
#[derive(Debug)]
pub struct FanOut {
    hub: Hub,
    outboxes: Vec<Arc<Outbox>>,
    text: String,
}

impl FanOut {
    /// `members` clients in the lobby; messages carry `size` bytes of text.
    pub fn new(members: usize, size: usize) -> Self {
        let config = Config {
            send_queue_bytes: usize::MAX / 2,
            ..Config::default()
        };
        let mut hub = Hub::new(Arc::new(config), Arc::new(Stats::default()), None, None);
        let mut outboxes = Vec::with_capacity(members);
        for conn in 0..members as u64 {
            let outbox = Arc::new(Outbox::new(usize::MAX / 2));
            let (joined, _) = oneshot::channel();
            hub.handle(Cmd::Join(Box::new(JoinRequest {
                conn,
                version: PROTOCOL_VERSION,
                nick: format!("member{conn}"),
                client: "bench".into(),
                addr: "127.0.0.1:1".parse().expect("address"),
                relayed: false,
                via: None,
                outbox: outbox.clone(),
                login: None,
                joined,
            })));
            outboxes.push(outbox);
        }
        hub.settle();
        let mut fixture = FanOut {
            hub,
            outboxes,
            text: "x".repeat(size),
        };
        fixture.drain();
        fixture
    }

    /// Member 0 sends `burst` messages to the lobby, handled as one batch of commands (as the
    /// hub takes them from its channel); then every queue is emptied. Returns the frames that
    /// were queued (pieces, not messages: a run of broadcasts is one piece per member).
    pub fn publish(&mut self, burst: usize) -> usize {
        for tag in 0..burst as u64 {
            self.hub.handle(Cmd::Send {
                conn: 0,
                msg: Outgoing {
                    tag,
                    to: Target::Room(DEFAULT_ROOM.to_owned()),
                    body: Body::Text(self.text.clone()),
                    attrs: Vec::new(),
                },
                arrived: tokio::time::Instant::now(),
            });
        }
        self.hub.settle();
        self.drain()
    }

    fn drain(&mut self) -> usize {
        self.outboxes.iter().map(|o| o.discard_queued()).sum()
    }
}
