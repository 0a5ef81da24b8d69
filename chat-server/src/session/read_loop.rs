//! An admitted connection's life: asking the hub to admit it, then reading, checking and
//! forwarding its frames while writing what the hub queues for it, and leaving.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use crate::wire::WireWrite;
use chat_core::frame::{FrameError, encode_frame};
use chat_core::protocol::{
    ClientFrame, DisconnectReason, MAX_SERVER_FRAME, RejectReason, Rejected, ServerFrame,
};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::auth::{hashed, log_in};
use super::handshake::{Accepted, LINGER, Refusal, linger, refuse};
use super::step::{Flood, Step, step};
use super::{Reader, Shared};
use crate::config::Config;
use crate::event::EventKind;
use crate::hub::{Cmd, ConnId, JoinRequest, Login};
use crate::outbox::{Outbox, PushError, SocketSink, Writer};
use crate::stats::Stats;

/// An admitted connection.
pub(super) struct Admitted {
    pub(super) reader: Box<Reader>,
    pub(super) conn: ConnId,
    pub(super) outbox: Arc<Outbox>,
    pub(super) writer: Writer<SocketSink>,
    /// The account logged in to, by key.
    pub(super) account: Option<String>,
}

/// Logs the client in and has the hub admit it; `None` once the client has been told why
/// not.
pub(super) async fn enter(
    reader: Box<Reader>,
    w: WireWrite,
    accepted: Box<Accepted>,
    shared: &Shared,
) -> Option<Admitted> {
    let login = tokio::select! {
        login = log_in(&accepted, shared) => login,
        () = shared.shutdown.cancelled() => Err(Refusal::new(
            RejectReason::ShuttingDown,
            "the server is shutting down",
            accepted.addr,
        )),
    };
    let login = match login {
        Ok(login) => login,
        Err(refusal) => {
            refuse(reader, w, refusal, shared).await;
            return None;
        }
    };
    let account = login
        .as_ref()
        .map(|l| chat_core::names::nick_keys(&l.account.nick).folded);
    let (conn, outbox, writer) = admit(w, accepted, login, shared).await?;
    Some(Admitted {
        reader,
        conn,
        outbox,
        writer,
        account,
    })
}

/// Asks the hub to admit the client, with the queue the hub will fill for it; `None` (after
/// telling the client why) if it is not admitted.
pub(super) async fn admit(
    w: WireWrite,
    accepted: Box<Accepted>,
    login: Option<Login>,
    shared: &Shared,
) -> Option<(ConnId, Arc<Outbox>, Writer<SocketSink>)> {
    let config = &shared.config;
    let conn: ConnId = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let outbox = Arc::new(Outbox::with_socket(config.send_queue_bytes, w));
    let writer = Writer::new(SocketSink(outbox.clone()));
    let (joined_tx, joined_rx) = oneshot::channel();
    let join = Cmd::Join(Box::new(JoinRequest {
        conn,
        version: accepted.version,
        nick: accepted.hello.nick.clone(),
        client: accepted.hello.client.clone(),
        addr: accepted.addr,
        relayed: accepted.relayed,
        via: accepted.via,
        outbox: outbox.clone(),
        login,
        joined: joined_tx,
    }));
    // Nothing is read until the Welcome is queued, so no direct answer can overtake it. The
    // hub either answers (admitted) or drops the sender (shutting down, or gone); nothing is
    // written before that. Once admitted, a write failure is noticed by the read loop, which
    // reports the client gone.
    let answer = match shared.hub.send(join).await {
        Ok(()) => joined_rx.await.ok(),
        Err(_) => None,
    };
    let refused = match answer {
        Some(Ok(())) => return Some((conn, outbox, writer)),
        Some(Err(mut rejected)) => {
            rejected.reason = rejected.reason.for_version(accepted.version);
            rejected
        }
        None => Rejected {
            reason: RejectReason::ShuttingDown,
            message: "the server is shutting down".into(),
        },
    };
    let _ = shared
        .hub
        .send(Cmd::Record(EventKind::Rejected {
            addr: accepted.addr.to_string(),
            nick: Some(accepted.hello.nick.clone()),
            reason: refused.message.clone(),
        }))
        .await;
    let frame = ServerFrame::Rejected(refused);
    outbox.close(encode_frame(&frame, MAX_SERVER_FRAME).ok(), false);
    writer.finish(&outbox, &shared.stats).await;
    None
}

/// Ends an admitted connection: tells the hub why (unless it decided), writes what is left.
pub(super) async fn leave(
    reader: Box<Reader>,
    mut writer: Writer<SocketSink>,
    end: End,
    conn: ConnId,
    outbox: Arc<Outbox>,
    shared: &Shared,
) {
    let linger_after = matches!(
        end,
        End::Leave(
            DisconnectReason::ProtocolError | DisconnectReason::Flooding,
            _
        )
    );
    match end {
        End::Leave(reason, message) => {
            let leave = Cmd::Leave {
                conn,
                reason,
                message,
            };
            if shared.hub.send(leave).await.is_err() {
                close_for_shutdown(&outbox);
            }
        }
        End::HubGone => close_for_shutdown(&outbox),
        End::ClosedByHub => {}
        End::Shutdown => {
            // The hub says bye to every client it knows, after handling what was already
            // read. Give it that chance (writing meanwhile); close here only if it never
            // comes.
            let wait = writer.drive(outbox.closed(), &outbox, &shared.stats);
            let _ = tokio::time::timeout(LINGER, wait).await;
            close_for_shutdown(&outbox);
        }
    }
    writer.finish(&outbox, &shared.stats).await;
    if linger_after {
        linger(reader).await;
    }
}

/// How a connection's read loop ended.
#[derive(Debug)]
pub(super) enum End {
    /// The client leaves; the hub must be told why.
    Leave(DisconnectReason, String),
    /// The hub already removed the client (quit handled, queue overflow, shutdown).
    ClosedByHub,
    /// The server is shutting down.
    Shutdown,
    /// The hub is no longer running.
    HubGone,
}

/// Reads, checks and forwards frames until the connection ends, writing what the hub queues
/// for the client all along.
pub(super) async fn read_loop<W: AsyncWrite + Unpin>(
    reader: &mut Reader,
    writer: &mut Writer<W>,
    conn: ConnId,
    version: u16,
    outbox: &Outbox,
    shared: &Shared,
    flood: &mut Flood,
) -> End {
    let stats = &*shared.stats;
    let lost = || {
        End::Leave(
            DisconnectReason::ConnectionClosed,
            "connection lost while sending to the client".to_owned(),
        )
    };
    // Registered once, for the whole loop.
    let mut shutdown = pin!(shared.shutdown.cancelled());
    // A password being hashed, for a command to send once hashed.
    let mut hashing = None;
    loop {
        // How long to wait before handing the command over (file chunks over the file rate).
        let mut pause = None;
        let cmd = if let Some(hashing) = hashing.take() {
            match writer.drive(hashing, outbox, stats).await {
                Ok(Ok(cmd)) => cmd,
                Ok(Err(e)) => {
                    if !reply(outbox, &ServerFrame::Error(e)) {
                        return overflow(&shared.config);
                    }
                    continue;
                }
                Err(_) => return lost(),
            }
        } else {
            // One poll function rather than a `select!` of futures: what an idle connection
            // waits on is held in its task's state for as long as it is connected.
            let woke = poll_fn(|cx| {
                if outbox.poll_closed(cx).is_ready() {
                    return Poll::Ready(Err(if outbox.failed() {
                        lost()
                    } else {
                        End::ClosedByHub
                    }));
                }
                if shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(End::Shutdown));
                }
                // Reading before writing: a busy room could keep the writer going for ever,
                // and the client would never be heard; input, on the other hand, is bounded
                // by the rate limit (and a client that waits for answers lets the writer run).
                if let Poll::Ready(read) = poll_next_frame(reader, cx) {
                    return Poll::Ready(Ok(read));
                }
                writer.poll_pump(outbox, stats, cx).map(|_| {
                    outbox.fail();
                    Err(lost())
                })
            });
            let read = match woke.await {
                Ok(read) => read,
                Err(end) => return end,
            };
            // Deciding is synchronous, so that no frame is held across the wait for the hub
            // (every idle connection's task is as large as its largest waiting state); for
            // the same reason nothing is awaited inside this `match`, whose value would be
            // kept across the wait.
            let config = &shared.config;
            match step(read, conn, version, config, flood, Instant::now()) {
                Step::Next => continue,
                Step::Reply(frame) => {
                    if !reply(outbox, &frame) {
                        return overflow(config);
                    }
                    continue;
                }
                Step::Limited { answer, mute } => {
                    Stats::add(&stats.rate_limited, 1);
                    if !reply(outbox, &answer) {
                        return overflow(config);
                    }
                    match mute {
                        Some(cmd) => cmd,
                        None => continue,
                    }
                }
                Step::Hub(cmd) => cmd,
                Step::Paced { cmd, wait } => {
                    pause = Some(wait);
                    cmd
                }
                Step::End(end) => return end,
                Step::Hash(purpose, password) => {
                    let (hub, stats) = (shared.hub.clone(), shared.stats.clone());
                    hashing = Some(Box::pin(hashed(conn, purpose, password, hub, stats)));
                    continue;
                }
            }
        };
        if let Some(wait) = pause {
            // Boxed: an idle connection's state does not carry a timer.
            let sleep = Box::pin(tokio::time::sleep(wait));
            if writer.drive(sleep, outbox, stats).await.is_err() {
                return lost();
            }
        }
        match writer.drive(to_hub(shared, cmd), outbox, stats).await {
            Ok(true) => {}
            Ok(false) => return End::HubGone,
            Err(_) => return lost(),
        }
    }
}

/// Polls for the client's next frame. While no frame is partly received, the connection holds
/// no read buffer: it waits for the socket to be readable first, and then gets one.
pub(super) fn poll_next_frame(
    reader: &mut Reader,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<ClientFrame>, FrameError>> {
    if reader.buffered() == 0 {
        reader.release_buffer();
        if let Err(e) = ready!(reader.get_ref().inner.poll_read_ready(cx)) {
            return Poll::Ready(Err(FrameError::Io(e)));
        }
        reader.reserve_buffer();
    }
    reader.poll_recv(cx)
}

/// Hands a command to the hub; false if the hub is gone. The usual case (room in the hub's
/// queue) does not wait; the rare wait for room is boxed, so that the read loop's state, which
/// every idle connection holds, does not carry a command and a semaphore wait.
pub(super) fn to_hub(shared: &Shared, cmd: Cmd) -> impl Future<Output = bool> + '_ {
    let waiting = match shared.hub.try_send(cmd) {
        Ok(()) => Ok(None),
        Err(TrySendError::Full(cmd)) => Ok(Some(Box::pin(shared.hub.send(cmd)))),
        Err(TrySendError::Closed(_)) => Err(()),
    };
    async move {
        match waiting {
            Ok(None) => true,
            Ok(Some(send)) => send.await.is_ok(),
            Err(()) => false,
        }
    }
}

/// Closes the outbox with a shutdown `Bye` unless it is closed already.
pub(super) fn close_for_shutdown(outbox: &Outbox) {
    let bye = ServerFrame::Bye {
        reason: DisconnectReason::ServerShutdown,
        message: "the server is shutting down".into(),
    };
    outbox.close(encode_frame(&bye, MAX_SERVER_FRAME).ok(), false);
}

pub(super) fn overflow(config: &Config) -> End {
    End::Leave(
        DisconnectReason::SendQueueExceeded,
        format!(
            "send queue exceeded ({} bytes waiting): the client is not reading",
            config.send_queue_bytes
        ),
    )
}

/// Queues a direct answer; false if the client's queue is full.
pub(super) fn reply(outbox: &Outbox, frame: &ServerFrame) -> bool {
    match encode_frame(frame, MAX_SERVER_FRAME) {
        Ok(bytes) => outbox.push(bytes) != Err(PushError::Full),
        Err(_) => true,
    }
}
