//! What the suite's end-to-end tests share: an in-process server on port 0, clients that wait
//! for specific frames with a timeout (never a sleep), and a paused clock moved on demand for
//! time-based behaviour (timeouts of minutes checked in milliseconds, without timing luck).

pub mod process;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_core::client::{Client, ConnectOptions, TcpClient, connect};
use chat_core::connection::FrameReader;
use chat_core::frame::encode_frame;
use chat_core::protocol::{
    ChatMessage, ClientFrame, HANDSHAKE_MAX_FRAME, Hello, MAX_SERVER_FRAME, RejectReason,
    ServerFrame,
};
use chat_server::{Config, RunningServer, Server};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// What a client reads from: a TCP or a TLS stream.
pub trait Rd: tokio::io::AsyncRead + Unpin {}
impl<T: tokio::io::AsyncRead + Unpin> Rd for T {}
/// What a client writes to: a TCP or a TLS stream.
pub trait Wr: tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncWrite + Unpin> Wr for T {}

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// Where the monitor listens, when the test asked for one.
    pub monitor: Option<chat_server::MonitorInfo>,
    running: RunningServer,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on 127.0.0.1:0 with a log in a fresh temp dir; `tweak` adjusts the config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("messages.jsonl");
        let mut config = Config {
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            log_file: Some(log.clone()),
            stats_interval: None,
            ..Config::default()
        };
        tweak(&mut config);
        let running = Server::bind(config).await.expect("bind").spawn();
        TestServer {
            addr: running.addr(),
            monitor: running.monitor().cloned(),
            log,
            running,
            _dir: dir,
        }
    }

    pub async fn client(&self, nick: &str) -> TcpClient {
        connect(&self.addr.to_string(), &ConnectOptions::new(nick))
            .await
            .unwrap_or_else(|e| panic!("{nick} could not connect: {e}"))
    }

    /// Connects as `nick`, returning the refusal rather than panicking.
    pub async fn client_result(
        &self,
        nick: &str,
    ) -> Result<TcpClient, chat_core::client::ClientError> {
        connect(&self.addr.to_string(), &ConnectOptions::new(nick)).await
    }

    /// The TLS certificate the server presents, to reload it; `None` without TLS.
    pub fn tls(&self) -> Option<std::sync::Arc<chat_service::tls::Reloadable>> {
        self.running.tls()
    }

    /// The fingerprint of the certificate the server presents now.
    pub fn fingerprint(&self) -> String {
        self.tls().map(|t| t.fingerprint()).unwrap_or_default()
    }

    /// The server's counters now.
    pub fn stats(&self) -> chat_server::StatsSnapshot {
        self.running.stats().snapshot()
    }

    /// Connects as `nick` (with `password`, if any) from the loopback address `from`: tests use
    /// the addresses of 127.0.0.0/8 as different hosts (see [`count_loopback`]).
    pub async fn client_from(
        &self,
        from: &str,
        nick: &str,
        password: Option<&str>,
    ) -> Result<TcpClient, chat_core::client::ClientError> {
        let stream = connect_from(from, self.addr).await;
        let conn = chat_core::Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("connection");
        let mut opts = ConnectOptions::new(nick);
        opts.password = password.map(Into::into);
        let shake = chat_core::client::handshake(conn, None, &opts);
        tokio::time::timeout(WAIT, shake)
            .await
            .unwrap_or_else(|_| panic!("{nick} from {from}: no answer to the Hello"))
    }

    /// Stops the server and waits until it has finished (log flushed); returns the log lines.
    pub async fn stop(self) -> Vec<serde_json::Value> {
        tokio::time::timeout(WAIT, self.running.shutdown())
            .await
            .expect("server stops in time");
        read_log(&self.log)
    }
}

/// Connects as `nick` with a password (logging in to the account).
pub async fn login(
    server: &TestServer,
    nick: &str,
    password: &str,
) -> Result<TcpClient, chat_core::client::ClientError> {
    let mut opts = ConnectOptions::new(nick);
    opts.password = Some(password.into());
    connect(&server.addr.to_string(), &opts).await
}

/// The refusal of a connection that was expected to be refused: its reason and message.
pub fn refused<R, W>(
    res: Result<Client<R, W>, chat_core::client::ClientError>,
) -> (RejectReason, String) {
    match res {
        Err(chat_core::client::ClientError::Rejected(r)) => (r.reason, r.message),
        Ok(c) => panic!("expected a refusal, was welcomed as {}", c.welcome.nick),
        Err(e) => panic!("expected a refusal, got {e}"),
    }
}

/// Sends a frame, which must go out.
pub async fn send<R: Rd, W: Wr>(client: &mut Client<R, W>, frame: ClientFrame) {
    client.sender.send(&frame).await.expect("send");
}

/// Registers the client's nickname and waits for the confirmation.
pub async fn register<R: Rd, W: Wr>(client: &mut Client<R, W>, password: &str) {
    send(
        client,
        ClientFrame::Register {
            password: password.into(),
        },
    )
    .await;
    expect(client, "Registered", |f| {
        matches!(f, ServerFrame::Registered { .. })
    })
    .await;
}

/// The next `Error` frame (other frames are skipped).
pub async fn expect_error<R: Rd, W: Wr>(
    client: &mut Client<R, W>,
) -> chat_core::protocol::ErrorFrame {
    match expect(client, "an error", |f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => e,
        _ => unreachable!(),
    }
}

/// Quits and reads until the server closes.
pub async fn quit<R: Rd, W: Wr>(mut client: Client<R, W>) {
    client.sender.quit("").await.expect("quit");
    read_to_end(&mut client).await;
}

/// Counts every address, loopback included, against the limits per address (by default
/// loopback is exempt): tests then use 127.0.0.0/8's addresses as different hosts.
pub fn count_loopback(config: &mut Config) {
    config.limits.exempt.clear();
}

/// A TCP connection to `to` from the local address `from` (an address of 127.0.0.0/8).
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let local: std::net::IpAddr = from.parse().expect("a local address");
    socket
        .bind(SocketAddr::new(local, 0))
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket
        .connect(to)
        .await
        .unwrap_or_else(|e| panic!("connect from {from}: {e}"))
}

/// Rate limits no test client reaches by accident.
pub fn generous_rate(config: &mut Config) {
    config.rate.burst = 1_000_000;
    config.rate.per_sec = 1_000_000.0;
}

pub fn read_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}

/// Reads frames until one satisfies `pred`; panics after [`WAIT`] or if the connection ends.
pub async fn expect<R: Rd, W: Wr, F>(
    client: &mut Client<R, W>,
    what: &str,
    mut pred: F,
) -> ServerFrame
where
    F: FnMut(&ServerFrame) -> bool,
{
    let nick = client.welcome.nick.clone();
    tokio::time::timeout(WAIT, async {
        loop {
            match client.events.next().await {
                Ok(Some(frame)) if pred(&frame) => return frame,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{nick}: connection closed while waiting for {what}"),
                Err(e) => panic!("{nick}: error while waiting for {what}: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{nick}: timed out waiting for {what}"))
}

/// Waits for a chat message with this text.
pub async fn expect_text<R: Rd, W: Wr>(client: &mut Client<R, W>, text: &str) -> ChatMessage {
    match expect(
        client,
        &format!("message {text:?}"),
        |f| matches!(f, ServerFrame::Message(m) if m.body.text() == text),
    )
    .await
    {
        ServerFrame::Message(m) => m,
        _ => unreachable!(),
    }
}

/// The next chat message, whatever it is (other frames are skipped).
pub async fn next_message<R: Rd, W: Wr>(client: &mut Client<R, W>) -> ChatMessage {
    match expect(client, "any message", |f| {
        matches!(f, ServerFrame::Message(_))
    })
    .await
    {
        ServerFrame::Message(m) => m,
        _ => unreachable!(),
    }
}

/// Reads until the server closes the connection; returns every frame seen.
pub async fn read_to_end<R: Rd, W: Wr>(client: &mut Client<R, W>) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Ok(Some(f)) = client.events.next().await {
            frames.push(f);
        }
    })
    .await
    .expect("connection closes in time");
    frames
}

/// Proves the server still serves: `a` says something in the lobby and `b` receives it.
pub async fn still_chatting<R1: Rd, W1: Wr, R2: Rd, W2: Wr>(
    a: &mut Client<R1, W1>,
    b: &mut Client<R2, W2>,
    text: &str,
) {
    a.sender.say("lobby", text).await.expect("send");
    expect_text(b, text).await;
    expect_text(a, text).await;
}

/// A client's two halves, to send and receive from different futures.
#[derive(Debug)]
pub struct TestClientParts {
    pub sender: chat_core::client::ClientSender<tokio::net::tcp::OwnedWriteHalf>,
    pub events: chat_core::client::ClientEvents<tokio::net::tcp::OwnedReadHalf>,
}

pub fn parts(client: TcpClient) -> TestClientParts {
    TestClientParts {
        sender: client.sender,
        events: client.events,
    }
}

/// With the runtime's clock paused (`#[tokio::test(start_paused = true)]`), moves it forward
/// `step` at a time until `done` completes, letting the real sockets do their work between
/// steps; panics once `limit` of paused time has passed without it.
///
/// A server or relay with a log file keeps the paused clock from moving by itself (its writer
/// is a blocking task), so its timeouts fire only when a test moves the clock: a timer armed
/// after a step counts from there, and nothing depends on how fast the machine is.
pub async fn advance_until<F: std::future::Future>(
    done: F,
    step: Duration,
    limit: Duration,
) -> F::Output {
    tokio::pin!(done);
    let mut advanced = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            out = &mut done => return out,
            () = real_pause() => {}
        }
        assert!(
            advanced < limit,
            "still waiting after {} s of paused time",
            limit.as_secs()
        );
        tokio::time::advance(step).await;
        advanced += step;
    }
}

/// Returns once `cond` holds, checking it every few milliseconds of real time (see
/// [`real_pause`]). Give it a limit: `tokio::time::timeout`, or [`advance_until`] with a paused
/// clock.
pub async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        real_pause().await;
    }
}

/// A few milliseconds of real time, in which the runtime polls its sockets and runs what they
/// woke; a paused clock does not move.
pub async fn real_pause() {
    let _ = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5))).await;
}

/// A raw TCP connection that sends whatever bytes the test wants.
pub async fn raw(
    addr: SocketAddr,
) -> (
    FrameReader<OwnedReadHalf, ServerFrame>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    raw_from("127.0.0.1", addr).await
}

/// [`raw`], from the loopback address `from`.
pub async fn raw_from(
    from: &str,
    addr: SocketAddr,
) -> (
    FrameReader<OwnedReadHalf, ServerFrame>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let stream = connect_from(from, addr).await;
    let (r, w) = stream.into_split();
    (FrameReader::new(r, MAX_SERVER_FRAME), w)
}

/// A `Hello` frame's bytes, for a guest.
pub fn hello(nick: &str, version: u16) -> Vec<u8> {
    let frame = ClientFrame::Hello(Hello {
        version,
        nick: nick.into(),
        client: "test".into(),
        password: None,
    });
    encode_frame(&frame, HANDSHAKE_MAX_FRAME)
        .expect("encode")
        .to_vec()
}

/// Reads frames until the server closes; returns them.
pub async fn frames_until_close(
    r: &mut FrameReader<OwnedReadHalf, ServerFrame>,
) -> Vec<ServerFrame> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Ok(Some(f)) = r.recv().await {
            out.push(f);
        }
    })
    .await
    .expect("the server closes the connection in time");
    out
}

/// The goodbye that ends `frames`: its reason and message.
pub fn bye(frames: &[ServerFrame]) -> (chat_core::protocol::DisconnectReason, String) {
    match frames.last() {
        Some(ServerFrame::Bye { reason, message }) => (*reason, message.clone()),
        other => panic!("expected Bye last, got {other:?} in {frames:?}"),
    }
}

/// Joins `room` (with or without `#`) and waits until the server says it is entered.
pub async fn join<R: Rd, W: Wr>(client: &mut Client<R, W>, room: &str) {
    send(client, ClientFrame::Join { room: room.into() }).await;
    let name = room.trim_start_matches('#');
    expect(
        client,
        "Entered",
        |f| matches!(f, ServerFrame::Entered { room: r, .. } if r == name),
    )
    .await;
}

/// The one `Rejected` frame of a refused connection: its reason and message.
pub fn rejection(frames: &[ServerFrame]) -> (RejectReason, String) {
    match frames {
        [ServerFrame::Rejected(r)] => (r.reason.clone(), r.message.clone()),
        other => panic!("expected exactly one Rejected frame, got {other:?}"),
    }
}

/// TLS on the chat port with a self-signed certificate made in `dir`, unencrypted
/// connections from loopback still served.
pub fn with_tls(dir: &std::path::Path) -> impl FnOnce(&mut Config) + use<> {
    let dir = dir.join("tls");
    move |c| {
        c.tls = Some(chat_server::config::TlsConfig {
            source: chat_service::tls::CertSource::Generated {
                dir,
                names: vec!["localhost".into(), "127.0.0.1".into()],
            },
            plaintext_from: chat_server::config::PlaintextFrom::Loopback,
        });
    }
}

/// Connects as `nick` over TLS, trusting `fingerprint`.
pub async fn tls_client(
    server: &TestServer,
    nick: &str,
    password: Option<&str>,
    fingerprint: &str,
) -> Result<chat_core::NetClient, chat_core::client::ClientError> {
    let mut opts = ConnectOptions::new(nick);
    opts.password = password.map(Into::into);
    let security = chat_core::Security::Tls {
        pinned: Some(fingerprint.to_owned()),
    };
    chat_core::connect_secured(&server.addr.to_string(), &opts, &security).await
}

/// Sends `data` as a file named `name` from `from` to `to` the way a client does: the offer,
/// its acceptance, chunks within the flow-control window, an acknowledgement for each chunk
/// received, and the recipient's word that it has it all (the SHA-256 is checked here). Returns
/// what arrived.
pub async fn transfer<R1: Rd, W1: Wr, R2: Rd, W2: Wr>(
    from: &mut Client<R1, W1>,
    to: &mut Client<R2, W2>,
    name: &str,
    data: &[u8],
) -> Vec<u8> {
    use chat_core::protocol::FILE_WINDOW;
    let offer = ClientFrame::FileOffer {
        tag: 1,
        to: to.welcome.nick.clone(),
        name: name.into(),
        size: data.len() as u64,
        sha256: chat_core::files::sha256(data),
    };
    send(from, offer).await;
    let ServerFrame::FileOffer(info) =
        expect(to, "an offer", |f| matches!(f, ServerFrame::FileOffer(_))).await
    else {
        unreachable!()
    };
    assert_eq!(info.name, name);
    let id = info.id;
    send(to, ClientFrame::FileAnswer { id, accept: true }).await;
    expect(from, "the acceptance", |f| {
        matches!(f, ServerFrame::FileAnswer { accept: true, .. })
    })
    .await;
    let (mut sent, mut acked) = (0usize, 0u64);
    let mut got = Vec::with_capacity(data.len());
    while got.len() < data.len() {
        while sent < data.len() && (sent as u64) < acked + FILE_WINDOW {
            let end = (sent + chat_core::protocol::FILE_CHUNK).min(data.len());
            let chunk = ClientFrame::FileChunk {
                id,
                data: data[sent..end].to_vec(),
            };
            from.sender.send(&chunk).await.expect("chunk");
            sent = end;
        }
        let ServerFrame::FileChunk { data: piece, .. } = expect(to, "a chunk", |f| {
            matches!(f, ServerFrame::FileChunk { .. })
        })
        .await
        else {
            unreachable!()
        };
        got.extend_from_slice(&piece);
        let received = got.len() as u64;
        send(to, ClientFrame::FileAck { id, received }).await;
        let ServerFrame::FileAck { received, .. } =
            expect(from, "an ack", |f| matches!(f, ServerFrame::FileAck { .. })).await
        else {
            unreachable!()
        };
        acked = received;
    }
    assert_eq!(chat_core::files::sha256(&got), info.sha256, "damaged");
    send(to, ClientFrame::FileDone { id }).await;
    expect(
        from,
        "done",
        |f| matches!(f, ServerFrame::FileDone { id: done } if *done == id),
    )
    .await;
    got
}
