//! Per-connection send queue, bounded in bytes, and the writer that drains it to the socket.
//!
//! The hub pushes already-encoded frames (shared `Bytes`) without ever waiting: a push either
//! fits under the byte limit or fails, and the hub then disconnects that client. Frames the hub
//! queues into an empty queue it also writes itself, once its batch of commands is handled
//! ([`Outbox::push_deferred`], [`Outbox::write_deferred`]): one non-blocking vectored write
//! per connection and batch, the way a single-threaded server writes, without waking the
//! connection's task. Only what the socket does not take at once (a client reading slowly),
//! and what the session queues itself, are left to the connection's [`Writer`], driven by its
//! session task, which takes everything queued in one go and writes it with vectored writes,
//! so a burst of frames for one client costs one syscall, not one per frame.
//!
//! Waiting is done by polling, not by futures kept in the session's state: the queue wakes
//! its connection's task through one [`AtomicWaker`] (frames the hub leaves to it, or the
//! close), and the writer polls the socket directly. Every connection's task holds that state
//! for its whole life, so it is kept to a few words (docs/architecture.md, costs per
//! connection).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::wire::WireWrite;
use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::stats::Stats;

/// How long a closing connection may take to write what is left (the final `Bye`).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Slices per vectored write (under the usual IOV_MAX of 1024): with a long queue of small
/// pieces, one system call carries many of them.
const MAX_IOV: usize = 512;
/// Up to this many pieces, the slices are set up on the stack.
const SMALL_IOV: usize = 32;
/// Capacity (in frames) an idle connection's queues keep: none. A burst grows them, and they
/// are given back once the connection is idle, so that thousands of idle clients stay cheap;
/// the first push after that allocates a small queue again (once per burst, not per frame).
const IDLE_QUEUE_CAPACITY: usize = 0;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue would exceed its byte limit.
    Full,
    /// The connection is closing.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// Bytes queued plus bytes taken by the writer and not yet written.
    bytes: usize,
    /// File chunks: written only when no chat frame waits (one per write at most), bounded
    /// by the hub's flow control rather than by `limit`.
    bulk: VecDeque<Bytes>,
    /// Bytes of `bulk`, plus those of the chunk the writer took and has not written yet.
    bulk_bytes: usize,
    closed: bool,
    /// Closed because writing to the socket failed (not by the hub).
    failed: bool,
    /// The connection's writer holds frames it took and has not written yet: until it has,
    /// nobody else writes (order).
    taken: bool,
    /// The hub is writing frames it took, outside the lock: the writer waits until it is done.
    writing: bool,
    /// The hub will write what is queued once its batch is handled.
    deferred: bool,
    /// The first queued frame is partly written already (the hub's write was cut short): it
    /// is kept even when the rest is discarded, or the client would get half a frame.
    partial: bool,
}

/// A byte-bounded queue of encoded frames for one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    limit: usize,
    /// The connection's task, woken when frames arrive in an empty queue (unless the hub
    /// writes them) and when the queue is closed. Only that task waits on the queue.
    waker: AtomicWaker,
    /// The socket, for the hub's own writes ([`Outbox::write_deferred`]) and the
    /// connection's [`Writer`] ([`SocketSink`]). None in tests of the hub alone.
    socket: Option<WireWrite>,
}

impl Outbox {
    /// A queue holding at most `limit` bytes, with no socket: everything goes through the
    /// writer, which the queue wakes.
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            limit,
            waker: AtomicWaker::new(),
            socket: None,
        }
    }

    /// A queue holding at most `limit` bytes for this socket, which the hub may write to
    /// directly; the connection's writer uses it through [`SocketSink`].
    pub(crate) fn with_socket(limit: usize, socket: WireWrite) -> Self {
        Outbox {
            socket: Some(socket),
            ..Outbox::new(limit)
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent, so poisoning is
        // ignored rather than propagated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes waiting for the client: queued, or taken by the writer and not yet written.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Queues a frame for the connection's writer. Never waits.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.lock();
        let was_empty = self.enqueue(&mut st, frame)?;
        drop(st);
        // The writer only waits when it found the queue empty.
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    /// Queues a frame from the hub. Never waits. `Ok(true)`: the hub is to write it itself
    /// with [`Outbox::write_deferred`] once its batch of commands is handled (the queue was
    /// empty and nobody is writing), and the writer is not woken; `Ok(false)`: the queue
    /// already had frames, which whoever writes them writes this one with.
    pub(crate) fn push_deferred(&self, frame: Bytes) -> Result<bool, PushError> {
        let mut st = self.lock();
        let was_empty = self.enqueue(&mut st, frame)?;
        if !was_empty || st.deferred {
            return Ok(false);
        }
        if self.socket.is_some() && !st.taken && !st.writing {
            st.deferred = true;
            return Ok(true);
        }
        drop(st);
        self.waker.wake();
        Ok(false)
    }

    /// Queues a file chunk, behind every chat frame: the writer takes at most one chunk per
    /// write, after what the queue holds, so a chat frame waits for one chunk at most. Never
    /// waits, and is not bounded by the queue's limit (the hub bounds chunks in flight).
    pub(crate) fn push_bulk(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        st.bulk_bytes += frame.len();
        st.bulk.push_back(frame);
        drop(st);
        self.waker.wake();
        Ok(())
    }

    /// File chunk bytes waiting for the client.
    pub(crate) fn bulk_bytes(&self) -> usize {
        self.lock().bulk_bytes
    }

    /// Adds `frame` to the queue under its limit; whether the queue was empty.
    fn enqueue(&self, st: &mut State, frame: Bytes) -> Result<bool, PushError> {
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.bytes + frame.len() > self.limit {
            return Err(PushError::Full);
        }
        st.bytes += frame.len();
        let was_empty = st.queue.is_empty();
        st.queue.push_back(frame);
        Ok(was_empty)
    }

    /// Writes what the queue holds straight to the socket with one non-blocking vectored
    /// write, for a queue [`Outbox::push_deferred`] deferred. What the socket does not take
    /// (or what the writer took meanwhile) is left to the writer, which is woken; a failed
    /// write closes the queue as failed. Called by the hub only.
    pub(crate) fn write_deferred(&self, stats: &Stats) {
        let Some(socket) = &self.socket else {
            return;
        };
        let mut st = self.lock();
        st.deferred = false;
        if st.taken || st.writing || st.closed || st.queue.is_empty() {
            let wake = st.closed || !st.queue.is_empty();
            drop(st);
            if wake {
                self.waker.wake();
            }
            return;
        }
        let mut batch = std::mem::take(&mut st.queue);
        st.writing = true;
        drop(st);
        let written = with_iov(&batch, |iov| socket.try_write_vectored(iov));
        let n = match written {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            other => other,
        };
        let mut st = self.lock();
        st.writing = false;
        let failed = match n {
            Ok(n) => {
                st.partial = consume(&mut batch, n);
                st.bytes = st.bytes.saturating_sub(n);
                stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                false
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        };
        // What was not written goes back in front of whatever was queued meanwhile.
        batch.append(&mut st.queue);
        st.queue = batch;
        // Over TLS, encrypted bytes the socket did not take are the writer's to send.
        let wake = !st.queue.is_empty() || !st.bulk.is_empty() || st.closed || socket.pending();
        if !wake {
            st.queue.shrink_to(IDLE_QUEUE_CAPACITY);
        }
        drop(st);
        if failed {
            self.fail();
        } else if wake {
            self.waker.wake();
        }
    }

    /// Closes the queue. With `discard`, frames not yet taken by the writer are dropped (the
    /// client is not reading them anyway). `last`, if given, is queued after everything else
    /// regardless of the byte limit. Closing twice keeps the first close.
    pub(crate) fn close(&self, last: Option<Bytes>, discard: bool) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        // A file's chunks are of no use once the connection ends.
        st.bulk.clear();
        st.bulk_bytes = 0;
        if discard {
            let keep = if st.partial {
                st.queue.pop_front()
            } else {
                None
            };
            st.queue.clear();
            st.bytes = keep.as_ref().map_or(0, Bytes::len);
            st.queue.extend(keep);
        }
        if let Some(last) = last {
            st.bytes += last.len();
            st.queue.push_back(last);
        }
        drop(st);
        self.waker.wake();
    }

    /// Closes the queue because the socket failed; the session then reports the client gone.
    pub(crate) fn fail(&self) {
        self.lock().failed = true;
        self.close(None, true);
    }

    /// Ends the connection from the server's side when its task is gone without closing it
    /// (a panic): the queue is closed as failed, and the socket, which the outbox keeps open,
    /// is shut in both directions, so that the client is not left connected to nobody.
    pub(crate) fn abandon(&self) {
        self.fail();
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Drops everything queued, as if written (benchmarks stand in for the writer with it).
    pub(crate) fn discard_queued(&self) -> usize {
        let mut st = self.lock();
        let n = st.queue.len() + st.bulk.len();
        st.queue.clear();
        st.bulk.clear();
        st.bytes = 0;
        st.bulk_bytes = 0;
        n
    }

    /// Whether the queue was closed because writing failed (rather than by the hub).
    pub(crate) fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Ready once the queue is closed; otherwise the task is woken when it is.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Registered before the check, so a close in between is not missed.
        self.waker.register(cx.waker());
        if self.lock().closed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves once the queue is closed.
    pub(crate) async fn closed(&self) {
        poll_fn(|cx| self.poll_closed(cx)).await;
    }

    /// What is queued, in order.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> Vec<Bytes> {
        self.lock().queue.iter().cloned().collect()
    }

    /// Whether the queue is closed.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The writer has written `chat` bytes of chat frames and `bulk` bytes of file chunks it
    /// had taken.
    fn written(&self, chat: usize, bulk: usize) {
        let mut st = self.lock();
        st.bytes = st.bytes.saturating_sub(chat);
        st.bulk_bytes = st.bulk_bytes.saturating_sub(bulk);
    }

    /// Moves everything queued into `batch` (which must be empty), then at most one file
    /// chunk, and sets `chat` to the bytes of chat frames taken (they come first):
    /// `Ready(true)`, or `Ready(false)` when the queue is closed and empty (nothing more will
    /// come); `Pending` (the task woken at the next push) when there is nothing yet.
    fn poll_take(
        &self,
        batch: &mut VecDeque<Bytes>,
        chat: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        self.waker.register(cx.waker());
        let mut st = self.lock();
        // The writer calls this with nothing left of what it took before.
        st.taken = false;
        if st.writing {
            // The hub wakes the task when it is done.
            return Poll::Pending;
        }
        if !st.queue.is_empty() || !st.bulk.is_empty() {
            // The bytes stay counted until written (see `written`), so the limit covers what
            // the writer holds too. Swapping keeps both allocations. Nobody else writes
            // meanwhile, so what is counted is exactly what is queued.
            std::mem::swap(batch, &mut st.queue);
            *chat = st.bytes;
            if let Some(chunk) = st.bulk.pop_front() {
                batch.push_back(chunk);
            }
            st.taken = true;
            st.partial = false;
            return Poll::Ready(true);
        }
        if st.closed {
            return Poll::Ready(false);
        }
        // Idle: give back what a burst made the queues grow to.
        st.queue.shrink_to(IDLE_QUEUE_CAPACITY);
        batch.shrink_to(IDLE_QUEUE_CAPACITY);
        Poll::Pending
    }

    /// [`Outbox::poll_take`] as a future.
    async fn take(&self, batch: &mut VecDeque<Bytes>) -> bool {
        let mut chat = 0;
        poll_fn(|cx| self.poll_take(batch, &mut chat, cx)).await
    }
}

/// The writing end of a connection: drains its outbox into the socket.
///
/// It has no task of its own: the connection's session task drives it alongside whatever it
/// awaits ([`Writer::poll_pump`], [`Writer::drive`]), and [`Writer::finish`] writes what is left
/// once the outbox is closed. One task per connection instead of two keeps idle connections
/// cheap (a task costs its future plus tokio's header, rounded up to 128 bytes), and a frame
/// queued while the session waits for something is written all the same.
#[derive(Debug)]
pub(crate) struct Writer<W> {
    sink: W,
    /// Frames taken from the outbox and not yet (entirely) written.
    batch: VecDeque<Bytes>,
    /// Bytes of chat frames at the front of `batch` (a file chunk may follow them).
    chat_left: usize,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub(crate) fn new(sink: W) -> Self {
        Writer {
            sink,
            batch: VecDeque::new(),
            chat_left: 0,
        }
    }

    /// Writes what the outbox holds, as it comes: `Ready` only with the error of a failed
    /// write. Once the outbox is closed and everything is written it stays `Pending` (the
    /// caller watches [`Outbox::poll_closed`]). Nothing is lost when the caller stops polling:
    /// what was taken from the outbox stays in the writer.
    pub(crate) fn poll_pump(
        &mut self,
        outbox: &Outbox,
        stats: &Stats,
        cx: &mut Context<'_>,
    ) -> Poll<io::Error> {
        loop {
            if self.batch.is_empty() {
                // Over TLS, what was encrypted and not yet sent goes first.
                if let Err(e) = ready!(Pin::new(&mut self.sink).poll_flush(cx)) {
                    return Poll::Ready(e);
                }
                if !ready!(outbox.poll_take(&mut self.batch, &mut self.chat_left, cx)) {
                    return Poll::Pending;
                }
            }
            match ready!(poll_write_some(&mut self.sink, &mut self.batch, cx)) {
                Ok(n) => {
                    let chat = n.min(self.chat_left);
                    self.chat_left -= chat;
                    outbox.written(chat, n - chat);
                    stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => return Poll::Ready(e),
            }
        }
    }

    /// Awaits `fut` while writing what the outbox receives meanwhile; `Err` if a write failed
    /// first (the outbox is then marked failed, and `fut` dropped).
    pub(crate) async fn drive<F: Future>(
        &mut self,
        fut: F,
        outbox: &Outbox,
        stats: &Stats,
    ) -> Result<F::Output, io::Error> {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            self.poll_pump(outbox, stats, cx).map(|e| {
                outbox.fail();
                Err(e)
            })
        })
        .await
    }

    /// Writes until the outbox is closed, then what is left, the final `Bye` included, within
    /// [`CLOSE_GRACE`], and shuts the socket's sending side down.
    pub(crate) async fn finish(mut self, outbox: &Outbox, stats: &Stats) {
        if self.drive(outbox.closed(), outbox, stats).await.is_ok() {
            let closing = async {
                loop {
                    while !self.batch.is_empty() {
                        let n = write_some(&mut self.sink, &mut self.batch).await?;
                        stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    if !outbox.take(&mut self.batch).await {
                        return Ok::<(), io::Error>(());
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, self.sink.shutdown()).await;
    }
}

/// Writes the front of `batch` with one vectored write and removes what was written; returns
/// the bytes written.
fn poll_write_some<W: AsyncWrite + Unpin>(
    sink: &mut W,
    batch: &mut VecDeque<Bytes>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let n = ready!(with_iov(batch, |iov| Pin::new(&mut *sink)
        .poll_write_vectored(cx, iov)))?;
    if n == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    consume(batch, n);
    Poll::Ready(Ok(n))
}

/// Calls `write` with slices of the front of `batch` (up to [`MAX_IOV`] pieces).
fn with_iov<R>(batch: &VecDeque<Bytes>, write: impl FnOnce(&[IoSlice<'_>]) -> R) -> R {
    // Usually a few pieces: a small array, cheap to set up each time; a long queue (a client
    // catching up) gets a larger list, so one system call carries more.
    if batch.len() <= SMALL_IOV {
        let mut iov = [IoSlice::new(&[]); SMALL_IOV];
        for (slot, frame) in iov.iter_mut().zip(batch.iter()) {
            *slot = IoSlice::new(frame);
        }
        write(&iov[..batch.len()])
    } else {
        let iov: Vec<IoSlice<'_>> = batch
            .iter()
            .take(MAX_IOV)
            .map(|f| IoSlice::new(f))
            .collect();
        write(&iov)
    }
}

/// Removes the first `n` bytes of `batch`, whole pieces and the start of the next; whether
/// the piece now in front is partly written.
fn consume(batch: &mut VecDeque<Bytes>, mut n: usize) -> bool {
    while n > 0 {
        let Some(front) = batch.front_mut() else {
            break;
        };
        if front.len() <= n {
            n -= front.len();
            batch.pop_front();
        } else {
            front.advance(n);
            return true;
        }
    }
    false
}

/// A connection's socket as its [`Writer`] sees it: the write half the outbox holds (and the
/// hub writes to directly).
#[derive(Debug)]
pub(crate) struct SocketSink(pub(crate) std::sync::Arc<Outbox>);

impl SocketSink {
    fn socket(&self) -> io::Result<&WireWrite> {
        self.0
            .socket
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncWrite for SocketSink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.socket()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket()?.poll_flush(cx)
    }

    /// Shuts the sending side down (the hub may still hold the socket), after what waits to
    /// be sent.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let socket = self.socket()?;
        ready!(socket.poll_flush(cx))?;
        Poll::Ready(socket.shutdown(std::net::Shutdown::Write))
    }
}

/// [`poll_write_some`] as a future.
async fn write_some<W: AsyncWrite + Unpin>(
    sink: &mut W,
    batch: &mut VecDeque<Bytes>,
) -> io::Result<usize> {
    poll_fn(|cx| poll_write_some(sink, batch, cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::tcp::OwnedWriteHalf;

    #[tokio::test]
    async fn bytes_taken_by_the_writer_count_until_written() {
        let ob = Outbox::new(10);
        ob.push(Bytes::from_static(b"12345678")).expect("push");
        let mut batch = VecDeque::new();
        assert!(ob.take(&mut batch).await);
        assert_eq!(ob.push(Bytes::from_static(b"123")), Err(PushError::Full));
        ob.written(8, 0);
        assert_eq!(ob.push(Bytes::from_static(b"123")), Ok(()));
    }

    #[tokio::test]
    async fn file_chunks_go_after_chat_frames_one_per_write_and_outside_the_limit() {
        let ob = Outbox::new(10);
        // Chunks far over the chat limit are accepted (the hub bounds them).
        ob.push_bulk(Bytes::from_static(b"chunk-one-32k"))
            .expect("bulk");
        ob.push_bulk(Bytes::from_static(b"chunk-two-32k"))
            .expect("bulk");
        ob.push(Bytes::from_static(b"hi")).expect("chat");
        ob.push(Bytes::from_static(b"there")).expect("chat");
        let (mut batch, mut chat) = (VecDeque::new(), 0);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(
            ob.poll_take(&mut batch, &mut chat, &mut cx),
            Poll::Ready(true)
        );
        // Both chat frames first, then one chunk; the chat's bytes are told apart.
        let taken: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
        assert_eq!(taken, [&b"hi"[..], b"there", b"chunk-one-32k"]);
        assert_eq!(chat, 7);
        ob.written(7, 13);
        batch.clear();
        assert_eq!(ob.pending_bytes(), 0);
        assert_eq!(ob.bulk_bytes(), 13);
        // A chat frame queued meanwhile still goes before the next chunk.
        ob.push(Bytes::from_static(b"again")).expect("chat");
        assert_eq!(
            ob.poll_take(&mut batch, &mut chat, &mut cx),
            Poll::Ready(true)
        );
        let taken: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
        assert_eq!(taken, [&b"again"[..], b"chunk-two-32k"]);
        // Closing drops what is left of a file.
        ob.close(None, false);
        assert_eq!(ob.bulk_bytes(), 0);
        assert_eq!(
            ob.push_bulk(Bytes::from_static(b"x")),
            Err(PushError::Closed)
        );
    }

    #[tokio::test]
    async fn a_failed_write_marks_the_outbox_failed() {
        struct Broken;
        impl AsyncWrite for Broken {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                std::task::Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        let ob = Outbox::new(100);
        ob.push(Bytes::from_static(b"lost")).expect("push");
        let stats = Stats::default();
        let mut writer = Writer::new(Broken);
        let never = std::future::pending::<()>();
        assert!(writer.drive(never, &ob, &stats).await.is_err());
        assert!(ob.is_closed());
        assert!(ob.failed());
    }

    #[tokio::test]
    async fn frames_queued_while_the_session_waits_for_something_else_are_written() {
        use tokio::io::AsyncReadExt;
        let ob = Outbox::new(1024);
        let stats = Stats::default();
        let (mut client, server) = tokio::io::duplex(64);
        let mut writer = Writer::new(server);
        ob.push(Bytes::from_static(b"hel")).expect("push");
        ob.push(Bytes::from_static(b"lo")).expect("push");
        // What is awaited completes only once the writer has written meanwhile.
        let read = async {
            let mut buf = [0u8; 5];
            client.read_exact(&mut buf).await.map(|_| buf)
        };
        let got = writer.drive(read, &ob, &stats).await.expect("written");
        assert_eq!(&got.expect("read"), b"hello");
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), 5);
        assert_eq!(
            ob.push(Bytes::from(vec![0; 1024])),
            Ok(()),
            "the bytes were released"
        );
    }

    #[tokio::test]
    async fn bytes_partly_written_stop_counting_at_once() {
        use tokio::io::AsyncReadExt;
        let ob = Outbox::new(10);
        let stats = Stats::default();
        // The peer takes 4 bytes, then the pipe is full.
        let (mut client, server) = tokio::io::duplex(4);
        let mut writer = Writer::new(server);
        ob.push(Bytes::from_static(b"12345678")).expect("push");
        let read = async {
            let mut buf = [0u8; 4];
            client.read_exact(&mut buf).await.map(|_| buf)
        };
        let got = writer.drive(read, &ob, &stats).await.expect("written");
        assert_eq!(&got.expect("read"), b"1234");
        // 4 bytes written, 4 still waiting: 6 more fit under the limit of 10, 7 would not.
        assert_eq!(
            ob.push(Bytes::from_static(b"1234567")),
            Err(PushError::Full)
        );
        assert_eq!(ob.push(Bytes::from_static(b"123456")), Ok(()));
    }

    /// A connected loopback pair: the server's write half and the client's end.
    async fn socket_pair() -> (OwnedWriteHalf, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (_, w) = server.into_split();
        // The hub only tries sockets tokio knows to be writable.
        w.writable().await.expect("writable");
        (w, client)
    }

    /// A pair whose buffers hold a few KiB only, so that a larger write is cut short.
    async fn small_socket_pair() -> (OwnedWriteHalf, tokio::net::TcpStream) {
        let (w, client) = socket_pair().await;
        let sockets = [socket2::SockRef::from(w.as_ref()), (&client).into()];
        for s in sockets {
            s.set_send_buffer_size(4096).expect("sndbuf");
            s.set_recv_buffer_size(4096).expect("rcvbuf");
        }
        (w, client)
    }

    /// Counts the wake-ups of a task.
    #[derive(Default)]
    struct WakeCount(std::sync::atomic::AtomicUsize);

    impl futures_util::task::ArcWake for WakeCount {
        fn wake_by_ref(me: &std::sync::Arc<Self>) {
            me.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn the_hub_writes_a_frame_it_deferred_without_the_writer() {
        use tokio::io::AsyncReadExt;
        let (w, mut client) = socket_pair().await;
        let ob = Outbox::with_socket(1024, WireWrite::Tcp(w));
        let stats = Stats::default();
        // The connection's task waits on the empty queue.
        let wakes = std::sync::Arc::new(WakeCount::default());
        let waker = futures_util::task::waker(wakes.clone());
        let mut batch = VecDeque::new();
        let waiting = ob.poll_take(&mut batch, &mut 0, &mut Context::from_waker(&waker));
        assert!(waiting.is_pending());
        assert_eq!(ob.push_deferred(Bytes::from_static(b"hel")), Ok(true));
        // Already to be written: the caller lists it once.
        assert_eq!(ob.push_deferred(Bytes::from_static(b"lo")), Ok(false));
        ob.write_deferred(&stats);
        assert!(ob.queued().is_empty());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "the task was woken");
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hello");
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), 5);
        assert_eq!(
            ob.push(Bytes::from(vec![0; 1024])),
            Ok(()),
            "bytes released"
        );
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_left_to_the_writer_in_order() {
        use tokio::io::AsyncReadExt;
        let (w, mut client) = small_socket_pair().await;
        let ob = std::sync::Arc::new(Outbox::with_socket(1 << 22, WireWrite::Tcp(w)));
        let stats = Stats::default();
        // Far more than the socket's buffers hold, in pieces numbered by their bytes.
        let pieces: Vec<Bytes> = (0..32u8).map(|i| Bytes::from(vec![i; 2048])).collect();
        assert_eq!(ob.push_deferred(pieces[0].clone()), Ok(true));
        for p in &pieces[1..] {
            assert_eq!(ob.push_deferred(p.clone()), Ok(false));
        }
        ob.write_deferred(&stats);
        let expected: Vec<u8> = pieces.iter().flatten().copied().collect();
        let left: usize = ob.queued().iter().map(Bytes::len).sum();
        let by_hub = stats.bytes_out.load(Ordering::Relaxed) as usize;
        assert!(by_hub > 0, "the hub wrote nothing");
        assert_eq!(left, expected.len() - by_hub, "the rest is queued");
        assert!(left > 0, "the socket took everything");
        // The writer takes over.
        let mut writer = Writer::new(SocketSink(ob.clone()));
        let read = async {
            let mut got = vec![0u8; expected.len()];
            client.read_exact(&mut got).await.map(|_| got)
        };
        let got = tokio::time::timeout(Duration::from_secs(20), writer.drive(read, &ob, &stats))
            .await
            .expect("the writer was woken")
            .expect("written");
        assert!(got.expect("read") == expected, "every byte once, in order");
        assert_eq!(
            stats.bytes_out.load(Ordering::Relaxed),
            expected.len() as u64
        );
    }

    #[tokio::test]
    async fn a_discarding_close_keeps_a_partly_written_frame_whole() {
        use tokio::io::AsyncReadExt;
        let (w, mut client) = small_socket_pair().await;
        let ob = std::sync::Arc::new(Outbox::with_socket(1 << 20, WireWrite::Tcp(w)));
        let stats = Stats::default();
        let frame = Bytes::from(vec![7u8; 64 * 1024]);
        assert_eq!(ob.push_deferred(frame.clone()), Ok(true));
        ob.write_deferred(&stats);
        let by_hub = stats.bytes_out.load(Ordering::Relaxed) as usize;
        assert!(by_hub > 0 && by_hub < frame.len(), "a partial write");
        assert_eq!(ob.push_deferred(Bytes::from_static(b"stale")), Ok(false));
        // A slow consumer is dropped: what is queued goes, but not the frame's other half.
        ob.close(Some(Bytes::from_static(b"bye")), true);
        let writer = Writer::new(SocketSink(ob.clone()));
        let read = async {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.map(|_| got)
        };
        let ((), got) = tokio::time::timeout(
            Duration::from_secs(20),
            futures_util::future::join(writer.finish(&ob, &stats), read),
        )
        .await
        .expect("finished");
        let mut expected = frame.to_vec();
        expected.extend_from_slice(b"bye");
        assert!(
            got.expect("read") == expected,
            "the whole frame, then the bye"
        );
    }

    #[tokio::test]
    async fn the_hub_leaves_frames_to_a_writer_that_holds_some() {
        let (w, _client) = socket_pair().await;
        let ob = Outbox::with_socket(1024, WireWrite::Tcp(w));
        ob.push(Bytes::from_static(b"first")).expect("push");
        let mut batch = VecDeque::new();
        assert!(ob.take(&mut batch).await);
        // Written by the writer after what it holds, not by the hub before.
        assert_eq!(ob.push_deferred(Bytes::from_static(b"second")), Ok(false));
        ob.write_deferred(&Stats::default());
        assert_eq!(ob.queued(), vec![Bytes::from_static(b"second")]);
    }

    #[tokio::test]
    async fn a_failed_direct_write_marks_the_outbox_failed() {
        let (w, client) = socket_pair().await;
        let ob = Outbox::with_socket(1 << 20, WireWrite::Tcp(w));
        // The peer resets the connection.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(client);
        let stats = Stats::default();
        let failed = async {
            while !ob.failed() {
                assert!(ob.push_deferred(Bytes::from_static(b"x")).is_ok());
                ob.write_deferred(&stats);
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), failed)
            .await
            .expect("the write failed");
        assert!(ob.is_closed());
    }

    #[test]
    fn push_respects_the_byte_limit() {
        let ob = Outbox::new(10);
        assert_eq!(ob.push(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(ob.push(Bytes::from_static(b"12345")), Err(PushError::Full));
        assert_eq!(ob.push(Bytes::from_static(b"1234")), Ok(()));
        ob.close(Some(Bytes::from_static(b"bye, beyond the limit")), false);
        assert_eq!(ob.push(Bytes::from_static(b"x")), Err(PushError::Closed));
        assert!(ob.is_closed());
    }

    #[tokio::test]
    async fn writer_drains_everything_then_stops() {
        let ob = Outbox::new(1024);
        for i in 0..100u8 {
            ob.push(Bytes::from(vec![i; 3])).expect("push");
        }
        ob.close(Some(Bytes::from_static(b"end")), false);
        let mut out = Vec::new();
        let stats = Stats::default();
        Writer::new(&mut out).finish(&ob, &stats).await;
        assert_eq!(out.len(), 303);
        assert_eq!(&out[300..], b"end");
        assert_eq!(&out[297..300], &[99, 99, 99]);
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), 303);
    }

    #[tokio::test]
    async fn discarding_close_drops_pending_frames() {
        let ob = Outbox::new(1024);
        ob.push(Bytes::from_static(b"stale")).expect("push");
        ob.close(Some(Bytes::from_static(b"bye")), true);
        let mut out = Vec::new();
        Writer::new(&mut out).finish(&ob, &Stats::default()).await;
        assert_eq!(out, b"bye");
    }
}
