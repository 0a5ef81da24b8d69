//! The fuzzing harness, shared by the cargo-fuzz targets (`fuzz_targets/`) and by
//! `chat-server/tests/fuzz_corpus.rs`, which replays the committed corpus and every past
//! crash through it in the normal test suite.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use chat_core::connection::FrameReader;
use chat_core::frame::{FrameCodec, decode_payload, encode_frame};
use chat_core::protocol::{
    Body, ClientFrame, DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, Hello, MAX_SERVER_FRAME, Outgoing,
    PROTOCOL_VERSION, RelayHello, ServerFrame, Target,
};
use chat_server::{Config, RunningServer, Server};
use chat_service::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_util::codec::Decoder;

/// How long the server may take to answer and close once the client has stopped sending: a
/// wrong password from an address that gave several is answered only after the server's
/// longest login delay (every input comes from 127.0.0.1, and earlier inputs may have
/// registered the nickname), and hashing may wait for the pool, on a machine the fuzzer keeps
/// busy.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(
    chat_server::login::MAX_DELAY.as_secs() + chat_server::login::HASH_WAIT.as_secs() + 10,
);
const RELAY_SECRET: &str = "fuzz-relay-secret-0123456789-abcdef";

/// A panic anywhere (the server's tasks included, where tokio would otherwise catch it) is a
/// crash for the fuzzer.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

/// Reads `data` as a stream of frames of every kind and size limit. Whatever decodes must
/// encode back to the same bytes' meaning; nothing may panic.
pub fn frames(data: &[u8]) {
    for max in [HANDSHAKE_MAX_FRAME, DEFAULT_MAX_FRAME] {
        decode_all::<ClientFrame>(data, max);
    }
    decode_all::<ServerFrame>(data, MAX_SERVER_FRAME);
}

fn decode_all<T>(data: &[u8], max: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut codec = FrameCodec::<T, T>::new(max);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode_eof(&mut buf) {
        let bytes = encode_frame(&frame, usize::MAX).expect("a decoded frame encodes");
        let again: T = decode_payload(&bytes[4..]).expect("an encoded frame decodes");
        assert_eq!(frame, again);
    }
}

/// What a fuzzed client does, step by step: any client frame (the protocol's own type, so the
/// harness follows it as it grows), or one of the moves that random frames would rarely make
/// (a Hello likely to be admitted, a relay with the right secret, a plain message to the lobby),
/// or raw bytes.
#[derive(Debug, Arbitrary)]
enum Op {
    /// Any frame a client can send.
    Frame(ClientFrame),
    /// A Hello with a valid nickname (one of eight).
    ValidHello { nick: u8 },
    /// A relay's frame with the right secret, for a guest at `peer_addr`.
    Relayed { peer_addr: String },
    /// A message to the lobby.
    Say { text: String },
    /// Bytes as they are: garbage, or part of a frame.
    Raw(Vec<u8>),
    /// A length prefix announcing this many bytes.
    Prefix(u32),
}

impl Op {
    fn encode(self, out: &mut Vec<u8>) {
        let frame = match self {
            Op::Frame(frame) => frame,
            Op::ValidHello { nick } => ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                nick: format!("fuzz{}", nick % 8),
                client: "chat-fuzz".into(),
                password: None,
            }),
            Op::Relayed { peer_addr } => ClientFrame::RelayHello(RelayHello {
                secret: RELAY_SECRET.to_owned(),
                peer_addr,
                relay: "chat-fuzz".into(),
            }),
            Op::Say { text } => ClientFrame::Send(Outgoing {
                tag: 1,
                to: Target::Room("lobby".into()),
                body: Body::Text(text),
                attrs: Vec::new(),
            }),
            Op::Raw(bytes) => {
                out.extend_from_slice(&bytes);
                return;
            }
            Op::Prefix(len) => {
                out.extend_from_slice(&len.to_be_bytes());
                return;
            }
        };
        if let Ok(bytes) = encode_frame(&frame, usize::MAX) {
            out.extend_from_slice(&bytes);
        }
    }
}

/// A real server on loopback and a client that stays connected through every input: after
/// each input it must still be served.
pub struct Session {
    rt: Runtime,
    server: Option<RunningServer>,
    addr: SocketAddr,
    observer: OwnedWriteHalf,
    pongs: watch::Receiver<u64>,
    nonce: u64,
    last_check: std::time::Instant,
}

impl Session {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (server, addr, observer, pongs) = rt.block_on(async {
            let config = Config {
                listen: vec!["127.0.0.1:0".parse().expect("addr")],
                log_file: None,
                stats_interval: None,
                hello_timeout: Duration::from_millis(500),
                relay_secret: Some(Secret::from(RELAY_SECRET)),
                ..Config::default()
            };
            let server = Server::bind(config).await.expect("bind").spawn();
            let addr = server.addr();
            let stream = TcpStream::connect(addr).await.expect("observer connects");
            let (read, mut write) = stream.into_split();
            let hello = ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                nick: "observer".into(),
                client: "chat-fuzz".into(),
                password: None,
            });
            write
                .write_all(&encode_frame(&hello, usize::MAX).expect("encode"))
                .await
                .expect("observer says hello");
            let (tx, rx) = watch::channel(0u64);
            tokio::spawn(async move {
                let mut frames = FrameReader::<_, ServerFrame>::new(read, MAX_SERVER_FRAME);
                while let Ok(Some(frame)) = frames.recv().await {
                    if let ServerFrame::Pong { nonce, .. } = frame {
                        let _ = tx.send(nonce);
                    }
                }
                // Dropping `tx` tells the checker that the observer was disconnected.
            });
            (server, addr, write, rx)
        });
        Session {
            rt,
            server: Some(server),
            addr,
            observer,
            pongs,
            nonce: 0,
            last_check: std::time::Instant::now(),
        }
    }

    /// Plays one input as one client connection, then checks that the server answered with
    /// well-formed frames, closed the connection, and still serves the observer.
    pub fn run(&mut self, data: &[u8]) {
        let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
            return;
        };
        let mut bytes = Vec::new();
        for op in ops {
            op.encode(&mut bytes);
        }
        let addr = self.addr;
        self.rt.block_on(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            // The server may close early (a refusal, a protocol error): later writes fail,
            // which is fine.
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
            let mut received = Vec::new();
            let read = tokio::time::timeout(CLOSE_TIMEOUT, stream.read_to_end(&mut received));
            match read.await {
                Err(_) => panic!("the server did not close the connection after the client's end"),
                // A reset can cut what the server sent; what arrived is still checked below
                // as far as it goes.
                Ok(Err(_)) => check_frames(&received, false),
                Ok(Ok(_)) => check_frames(&received, true),
            }
        });
        self.check_observer();
    }

    /// Pings the observer, at most once a second: pings count against its rate limit (two
    /// per second by default).
    fn check_observer(&mut self) {
        if self.last_check.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_check = std::time::Instant::now();
        self.nonce += 1;
        let nonce = self.nonce;
        let ping = encode_frame(&ClientFrame::Ping { nonce }, usize::MAX).expect("encode");
        let (observer, pongs) = (&mut self.observer, &mut self.pongs);
        self.rt.block_on(async move {
            observer
                .write_all(&ping)
                .await
                .expect("the observer was disconnected");
            let answered = tokio::time::timeout(CLOSE_TIMEOUT, pongs.wait_for(|&n| n == nonce));
            match answered.await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => panic!("the observer was disconnected"),
                Err(_) => panic!("the observer got no pong"),
            }
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
    }
}

/// Everything the server sent must be whole, valid frames (the last one may be cut short
/// only if the connection was reset).
fn check_frames(received: &[u8], complete: bool) {
    let mut rest = received;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(
            len <= MAX_SERVER_FRAME,
            "the server sent a {len}-byte frame"
        );
        let Some(payload) = rest.get(4..4 + len) else {
            assert!(!complete, "the server's last frame is cut short");
            return;
        };
        if let Err(e) = decode_payload::<ServerFrame>(payload) {
            panic!("the server sent a frame that does not decode: {e}");
        }
        rest = &rest[4 + len..];
    }
    assert!(
        rest.is_empty() || !complete,
        "the server's last frame is cut short"
    );
}
