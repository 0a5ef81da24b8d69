//! Per-connection send queue, bounded in bytes, and the writer that drains it to the socket.
//!
//! The hub pushes already-encoded frames (shared `Bytes`) without ever waiting: a push either
//! fits under the byte limit or fails, and the hub then disconnects that client. The
//! connection's [`Writer`], driven by its session task, takes everything queued in one go and
//! writes it with vectored writes, so a burst of frames for one client costs one syscall, not
//! one per frame.
//!
//! Waiting is done by polling, not by futures kept in the session's state: the queue wakes
//! its connection's task through one [`AtomicWaker`] (frames in an empty queue, or the close),
//! and the writer polls the socket directly. Every connection's task holds that state for its
//! whole life, so it is kept to a few words (docs/architecture.md, costs per connection).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

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
    closed: bool,
    /// Closed because writing to the socket failed (not by the hub).
    failed: bool,
}

/// A byte-bounded queue of encoded frames for one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    limit: usize,
    /// The connection's task, woken when frames arrive in an empty queue and when the queue
    /// is closed. Only that task waits on the queue.
    waker: AtomicWaker,
}

impl Outbox {
    /// A queue holding at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            limit,
            waker: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent, so poisoning is
        // ignored rather than propagated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame. Never waits.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.bytes + frame.len() > self.limit {
            return Err(PushError::Full);
        }
        st.bytes += frame.len();
        let was_empty = st.queue.is_empty();
        st.queue.push_back(frame);
        drop(st);
        // The writer only waits when it found the queue empty.
        if was_empty {
            self.waker.wake();
        }
        Ok(())
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
        if discard {
            st.queue.clear();
            st.bytes = 0;
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

    /// Drops everything queued, as if written (benchmarks stand in for the writer with it).
    pub(crate) fn discard_queued(&self) -> usize {
        let mut st = self.lock();
        let n = st.queue.len();
        st.queue.clear();
        st.bytes = 0;
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

    /// The writer has written `n` bytes it had taken.
    fn written(&self, n: usize) {
        let mut st = self.lock();
        st.bytes = st.bytes.saturating_sub(n);
    }

    /// Moves everything queued into `batch` (which must be empty): `Ready(true)`, or
    /// `Ready(false)` when the queue is closed and empty (nothing more will come); `Pending`
    /// (the task woken at the next push) when there is nothing yet.
    fn poll_take(&self, batch: &mut VecDeque<Bytes>, cx: &mut Context<'_>) -> Poll<bool> {
        self.waker.register(cx.waker());
        let mut st = self.lock();
        if !st.queue.is_empty() {
            // The bytes stay counted until written (see `written`), so the limit covers what
            // the writer holds too. Swapping keeps both allocations.
            std::mem::swap(batch, &mut st.queue);
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
        poll_fn(|cx| self.poll_take(batch, cx)).await
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
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub(crate) fn new(sink: W) -> Self {
        Writer {
            sink,
            batch: VecDeque::new(),
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
            if self.batch.is_empty() && !ready!(outbox.poll_take(&mut self.batch, cx)) {
                return Poll::Pending;
            }
            match ready!(poll_write_some(&mut self.sink, &mut self.batch, cx)) {
                Ok(n) => {
                    outbox.written(n);
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
    // Usually a few pieces: a small array, cheap to set up at each poll; a long queue (a
    // client catching up) gets a larger list, so one system call carries more.
    let mut n = ready!(if batch.len() <= SMALL_IOV {
        let mut iov = [IoSlice::new(&[]); SMALL_IOV];
        for (slot, frame) in iov.iter_mut().zip(batch.iter()) {
            *slot = IoSlice::new(frame);
        }
        Pin::new(&mut *sink).poll_write_vectored(cx, &iov[..batch.len()])
    } else {
        let iov: Vec<IoSlice<'_>> = batch
            .iter()
            .take(MAX_IOV)
            .map(|f| IoSlice::new(f))
            .collect();
        Pin::new(&mut *sink).poll_write_vectored(cx, &iov)
    })?;
    if n == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    let total = n;
    while n > 0 {
        let Some(front) = batch.front_mut() else {
            break;
        };
        if front.len() <= n {
            n -= front.len();
            batch.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
    Poll::Ready(Ok(total))
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

    #[tokio::test]
    async fn bytes_taken_by_the_writer_count_until_written() {
        let ob = Outbox::new(10);
        ob.push(Bytes::from_static(b"12345678")).expect("push");
        let mut batch = VecDeque::new();
        assert!(ob.take(&mut batch).await);
        assert_eq!(ob.push(Bytes::from_static(b"123")), Err(PushError::Full));
        ob.written(8);
        assert_eq!(ob.push(Bytes::from_static(b"123")), Ok(()));
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
