//! One task per connection: the handshake, then reading, checking and rate-limiting the
//! client's frames and turning them into hub commands, while writing what the hub queues for
//! the client (the connection's [`Writer`], see [`crate::outbox`]).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`serve`]: a connection's phases, what sessions share, the drop guard |
//! | `handshake.rs` | the relay frame and `Hello`, refusals and the polite close |
//! | `auth.rs` | checking a login's password, hashing new passwords |
//! | `read_loop.rs` | admission by the hub, the read loop, leaving |
//! | `step.rs` | checking one frame (pure): protocol, rate limit, limits |

mod auth;
mod checks;
mod handshake;
mod read_loop;
mod step;
mod transport;

pub(crate) use handshake::refuse_full;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use chat_core::connection::FrameReader;
use chat_core::protocol::{ClientFrame, DisconnectReason, HANDSHAKE_MAX_FRAME};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::handshake::{greet, refuse};
use self::read_loop::{Admitted, enter, leave, read_loop};
use self::step::Flood;
use crate::config::Config;
use crate::hub::{Ack, Cmd, ConnId};
use crate::limits::{AddressBook, Presence};
use crate::login::Failures;
use crate::outbox::Outbox;
use crate::stats::Stats;
use crate::store::StoreHandle;
use crate::wire::WireRead;

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub stats: Arc<Stats>,
    pub hub: mpsc::Sender<Cmd>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub next_conn: AtomicU64,
    /// The store, for logins; `None` keeps no accounts.
    pub store: Option<StoreHandle<Ack>>,
    /// Recent wrong passwords per address.
    pub failures: Failures,
    /// Limits per address and per account.
    pub addresses: Arc<AddressBook>,
    /// The certificate TLS connections get; `None` serves plain TCP only.
    pub tls: Option<Arc<chat_service::tls::Reloadable>>,
    /// The bans in force (the hub changes them).
    pub bans: Arc<crate::bans::Bans>,
}

/// A connection's frame reader. The socket's halves are owned: once the client is admitted,
/// its outbox holds the write half, which the hub writes to directly.
type Reader = FrameReader<Counting<WireRead>, ClientFrame>;

/// Serves one accepted TCP connection until it ends.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// keeps a second copy of each argument in its state (its parameters and the locals they are
/// moved into), for the whole life of the connection.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice, for the connection's whole life"
)]
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    mut presence: Presence,
) -> impl Future<Output = ()> + Send {
    async move {
        let (r, w) = match Box::pin(transport::open(stream, peer, &shared)).await {
            Ok(halves) => halves,
            Err((refusal, halves)) => {
                let Some((r, w)) = halves else {
                    let kind = crate::event::EventKind::Rejected {
                        addr: peer.to_string(),
                        nick: None,
                        reason: refusal.message,
                    };
                    let _ = shared.hub.send(Cmd::Record(kind)).await;
                    return;
                };
                let reader = Box::new(FrameReader::new(
                    Counting {
                        inner: r,
                        stats: shared.stats.clone(),
                    },
                    HANDSHAKE_MAX_FRAME,
                ));
                return Box::pin(refuse(reader, w, *refusal, &shared)).await;
            }
        };
        // The reader, the handshake's outcome, the handshake and the ending phases are boxed:
        // a connection spends its life in the read loop, and its task should be no larger
        // than that state needs (the server's memory per idle connection). A future keeps a
        // slot for every local that lives across an await, so a large value moved from one
        // phase to the next would otherwise be paid for several times over.
        let mut reader: Box<Reader> = Box::new(FrameReader::new(
            Counting {
                inner: r,
                stats: shared.stats.clone(),
            },
            HANDSHAKE_MAX_FRAME,
        ));
        let accepted = match Box::pin(greet(&mut reader, &shared, peer, &mut presence)).await {
            Ok(accepted) => accepted,
            Err(refusal) => return Box::pin(refuse(reader, w, *refusal, &shared)).await,
        };
        // The chat phase. Logging in and being admitted are boxed: what they hold is not kept
        // in the connection's state for the rest of its life.
        let version = accepted.version;
        let Some(Admitted {
            mut reader,
            conn,
            outbox,
            mut writer,
            account,
        }) = Box::pin(enter(reader, w, accepted, &shared)).await
        else {
            return;
        };
        reader.set_max_frame(shared.config.max_frame);
        presence.admitted();
        let mut flood = Flood::new(&shared, presence, account);
        let mut abandoned = Abandoned {
            conn,
            outbox: Some(outbox.clone()),
            shared: &shared,
        };
        let end = read_loop(
            &mut reader,
            &mut writer,
            conn,
            version,
            &outbox,
            &shared,
            &mut flood,
        );
        let end = end.await;
        Box::pin(leave(reader, writer, end, conn, outbox, &shared)).await;
        abandoned.outbox = None;
        flood.park(&shared);
        // The connection's place among `--max-clients` is given back when it ends.
        drop(permit);
    }
}

/// Ends an admitted connection whose task stops before it has left (a panic in it, or the
/// runtime dropping it): the outbox keeps the socket open for the hub, so without this the
/// client would stay connected, still written to and never read. Disarmed by clearing
/// `outbox` once the connection has ended properly.
struct Abandoned<'a> {
    conn: ConnId,
    outbox: Option<Arc<Outbox>>,
    shared: &'a Shared,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let Some(outbox) = self.outbox.take() else {
            return;
        };
        outbox.abandon();
        let leave = Cmd::Leave {
            conn: self.conn,
            reason: DisconnectReason::ConnectionClosed,
            message: "the server lost this connection".to_owned(),
        };
        match self.shared.hub.try_send(leave) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            // The hub's queue is full: told as soon as there is room, from a task of its own.
            Err(TrySendError::Full(leave)) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let hub = self.shared.hub.clone();
                    runtime.spawn(async move { hub.send(leave).await });
                }
                Err(_) => tracing::error!(
                    conn = self.conn,
                    "could not tell the hub about a connection that ended abruptly"
                ),
            },
        }
    }
}

/// Counts bytes read from a client into the server's statistics (one relaxed atomic add per
/// read syscall, not per frame).
#[derive(Debug)]
pub(crate) struct Counting<R> {
    inner: R,
    stats: Arc<Stats>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chat_core::frame::encode_frame;
    use chat_core::protocol::{Hello, PROTOCOL_VERSION};
    use tokio::io::{AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::read_loop::End;
    use super::*;
    use crate::outbox::Writer;

    /// When writing failed (the socket broke while sending), the session must report the
    /// client gone even if reading has not failed (yet).
    #[tokio::test]
    async fn a_failed_write_makes_the_session_report_the_client_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (server_side, _) = listener.accept().await.expect("accept");
        let (r, w) = server_side.into_split();
        let r = WireRead::Tcp(r);
        let mut writer = Writer::new(w);
        let stats = Arc::new(Stats::default());
        let mut reader: Reader = FrameReader::new(
            Counting {
                inner: r,
                stats: stats.clone(),
            },
            1024,
        );
        let (hub, _hub_rx) = mpsc::channel(8);
        let shared = shared_with(hub, stats);
        let book = shared.addresses.clone();
        let mut flood = Flood::new(&shared, Presence::uncounted(book), None);
        let flood = &mut flood;
        let outbox = Outbox::new(1024);
        outbox.fail();
        match read_loop(&mut reader, &mut writer, 1, 2, &outbox, &shared, flood).await {
            End::Leave(DisconnectReason::ConnectionClosed, message) => {
                assert!(message.contains("sending"), "{message}");
            }
            other => panic!("expected the client to leave, got {other:?}"),
        }
        // Closed by the hub instead: the hub already knows, nothing to report.
        let outbox = Outbox::new(1024);
        outbox.close(None, false);
        assert!(matches!(
            read_loop(&mut reader, &mut writer, 1, 2, &outbox, &shared, flood).await,
            End::ClosedByHub
        ));
        // The read loop's own write fails while the client sends nothing: it reports the
        // client gone and marks the queue failed.
        let outbox = Outbox::new(1024);
        outbox
            .push(bytes::Bytes::from_static(b"lost"))
            .expect("push");
        let mut broken = Writer::new(Broken);
        let ended = read_loop(&mut reader, &mut broken, 1, 2, &outbox, &shared, flood);
        match tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the failed write ends the read loop")
        {
            End::Leave(DisconnectReason::ConnectionClosed, message) => {
                assert!(message.contains("sending"), "{message}");
            }
            other => panic!("expected the client to leave, got {other:?}"),
        }
        assert!(outbox.failed());
    }

    /// What sessions share, with `hub` as the hub's queue and no store.
    fn shared_with(hub: mpsc::Sender<Cmd>, stats: Arc<Stats>) -> Shared {
        Shared {
            config: Arc::new(Config::default()),
            stats,
            hub,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
            store: None,
            failures: Failures::default(),
            addresses: Arc::new(AddressBook::new(Default::default(), Default::default())),
            tls: None,
            bans: Default::default(),
        }
    }

    /// The outbox keeps the socket open for the hub: a connection whose task is dropped
    /// without leaving (as a panic in it would) must still be closed and reported.
    #[tokio::test]
    async fn a_connection_whose_task_ends_abruptly_is_closed_and_reported() {
        ends_abruptly(false).await;
    }

    #[tokio::test]
    async fn a_connection_that_ends_abruptly_is_reported_even_when_the_hub_is_busy() {
        ends_abruptly(true).await;
    }

    /// Admits a connection, aborts its task (with the hub's queue full first, if `busy`), and
    /// checks the hub hears of it and the client's connection ends.
    async fn ends_abruptly(busy: bool) {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server_side, peer) = listener.accept().await.expect("accept");
        let (hub_tx, mut hub_rx) = mpsc::channel(8);
        let shared = Arc::new(shared_with(hub_tx.clone(), Arc::new(Stats::default())));
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .expect("permit");
        let presence = Presence::uncounted(shared.addresses.clone());
        let task = tokio::spawn(serve(server_side, peer, shared, permit, presence));
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            nick: "ann".into(),
            client: "test".into(),
            password: None,
        });
        let hello = encode_frame(&hello, HANDSHAKE_MAX_FRAME).expect("encode");
        client.write_all(&hello).await.expect("hello");
        let secs = Duration::from_secs(10);
        // Act as the hub: admit the client, and queue it something.
        let request = match tokio::time::timeout(secs, hub_rx.recv()).await {
            Ok(Some(Cmd::Join(request))) => request,
            _ => panic!("no join"),
        };
        let (conn, outbox) = (request.conn, request.outbox.clone());
        request.joined.send(Ok(())).expect("joined");
        outbox
            .push(bytes::Bytes::from_static(b"welcome"))
            .expect("push");
        // Once it arrives, the session is in its read loop.
        let mut got = [0u8; 7];
        let read = client.read_exact(&mut got);
        tokio::time::timeout(secs, read)
            .await
            .expect("welcome")
            .expect("read");
        let mut queued = 0;
        while busy && hub_tx.try_send(Cmd::Barrier).is_ok() {
            queued += 1;
        }
        task.abort();
        assert!(task.await.expect_err("aborted").is_cancelled());
        for _ in 0..queued {
            let barrier = tokio::time::timeout(secs, hub_rx.recv()).await;
            assert!(matches!(barrier, Ok(Some(Cmd::Barrier))));
        }
        match tokio::time::timeout(secs, hub_rx.recv()).await {
            Ok(Some(Cmd::Leave {
                conn: left,
                reason: DisconnectReason::ConnectionClosed,
                ..
            })) => assert_eq!(left, conn),
            _ => panic!("no leave"),
        }
        assert!(outbox.failed());
        // The client is told: its connection ends.
        let mut rest = Vec::new();
        let eof = client.read_to_end(&mut rest);
        tokio::time::timeout(secs, eof)
            .await
            .expect("eof")
            .expect("read");
        assert!(rest.is_empty());
    }

    /// A socket whose every write fails.
    struct Broken;

    impl AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}
