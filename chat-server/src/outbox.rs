//! Per-connection send queue, bounded in bytes, and the task that drains it to the socket.
//!
//! The hub pushes already-encoded frames (shared `Bytes`) without ever waiting: a push either
//! fits under the byte limit or fails, and the hub then disconnects that client. The writer
//! task takes everything queued in one go and writes it with vectored writes, so a burst of
//! frames for one client costs one syscall, not one per frame.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

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
    /// Wakes the writer when frames arrive in an empty queue.
    data: Notify,
    /// Wakes whoever waits for the close (a `Notify` rather than a cancellation token: no
    /// allocation of its own, for a structure every connection has).
    closing: Notify,
}

impl Outbox {
    /// A queue holding at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            limit,
            data: Notify::new(),
            closing: Notify::new(),
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
            self.data.notify_one();
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
        self.data.notify_one();
        self.closing.notify_waiters();
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

    /// Resolves once the queue is closed.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close in between is not missed.
            notified.as_mut().enable();
            if self.lock().closed {
                return;
            }
            notified.await;
        }
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

    /// Moves everything queued into `batch` (which must be empty), waiting until there is
    /// something. Returns false when the queue is closed and empty: the writer is done.
    async fn take(&self, batch: &mut VecDeque<Bytes>) -> bool {
        loop {
            {
                let mut st = self.lock();
                if !st.queue.is_empty() {
                    // The bytes stay counted until written (see `written`), so the limit
                    // covers what the writer holds too. Swapping keeps both allocations.
                    std::mem::swap(batch, &mut st.queue);
                    return true;
                }
                if st.closed {
                    return false;
                }
                // Idle: give back what a burst made the queues grow to.
                st.queue.shrink_to(IDLE_QUEUE_CAPACITY);
                batch.shrink_to(IDLE_QUEUE_CAPACITY);
            }
            self.data.notified().await;
        }
    }
}

/// Drains `outbox` into `sink` until the outbox is closed and empty or the socket fails.
/// Once the outbox is closed, at most [`CLOSE_GRACE`] is spent on what is left.
///
/// This future lives as long as the connection, so it is kept small (the server's memory per
/// idle connection): the vectored write builds its slices on the stack of each poll, and the
/// closing phase, with its timer, is boxed.
pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
    mut sink: W,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
) {
    let mut batch = VecDeque::new();
    let open = async {
        // One wait for the close, registered once, not at every turn of the loop.
        let closed = outbox.closed();
        tokio::pin!(closed);
        loop {
            // `biased`: the usual case (frames ready, the write done at once) never polls the
            // closing signal.
            let more = tokio::select! {
                biased;
                more = outbox.take(&mut batch) => more,
                () = &mut closed => return Ok(()),
            };
            if !more {
                return Ok(());
            }
            while !batch.is_empty() {
                let n = tokio::select! {
                    biased;
                    res = write_some(&mut sink, &mut batch) => res?,
                    () = &mut closed => return Ok(()),
                };
                outbox.written(n);
                stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    };
    let open: io::Result<()> = open.await;
    if open.is_err() {
        // The peer is gone; the session sees the failure and reports the client gone.
        outbox.fail();
    } else {
        // Closed by the hub (or the session): what is left, the final `Bye` included, gets
        // the grace period.
        let closing = async {
            loop {
                while !batch.is_empty() {
                    let n = write_some(&mut sink, &mut batch).await?;
                    stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                if !outbox.take(&mut batch).await {
                    return Ok::<(), io::Error>(());
                }
            }
        };
        let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, closing)).await;
    }
    let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, sink.shutdown())).await;
}

/// Writes the front of `batch` with one vectored write and removes what was written; returns
/// the bytes written.
async fn write_some<W: AsyncWrite + Unpin>(
    sink: &mut W,
    batch: &mut VecDeque<Bytes>,
) -> io::Result<usize> {
    let mut n = std::future::poll_fn(|cx| {
        // Usually a few pieces: a small array, cheap to set up at each poll; a long queue
        // (a client catching up) gets a larger list, so one system call carries more.
        if batch.len() <= SMALL_IOV {
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
        }
    })
    .await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
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
    Ok(total)
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
        let ob = Arc::new(Outbox::new(100));
        ob.push(Bytes::from_static(b"lost")).expect("push");
        run_writer(Broken, ob.clone(), Arc::new(Stats::default())).await;
        assert!(ob.is_closed());
        assert!(ob.failed());
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
        let ob = Arc::new(Outbox::new(1024));
        for i in 0..100u8 {
            ob.push(Bytes::from(vec![i; 3])).expect("push");
        }
        ob.close(Some(Bytes::from_static(b"end")), false);
        let mut out = Vec::new();
        let stats = Arc::new(Stats::default());
        run_writer(&mut out, ob, stats.clone()).await;
        assert_eq!(out.len(), 303);
        assert_eq!(&out[300..], b"end");
        assert_eq!(&out[297..300], &[99, 99, 99]);
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), 303);
    }

    #[tokio::test]
    async fn discarding_close_drops_pending_frames() {
        let ob = Arc::new(Outbox::new(1024));
        ob.push(Bytes::from_static(b"stale")).expect("push");
        ob.close(Some(Bytes::from_static(b"bye")), true);
        let mut out = Vec::new();
        run_writer(&mut out, ob, Arc::new(Stats::default())).await;
        assert_eq!(out, b"bye");
    }
}
