//! A buffered reader whose buffer follows the traffic: small while a connection is quiet,
//! grown (doubling, up to a limit) while reads keep filling it, and given back once reads
//! are small again. A relay holds one per direction per guest; a fixed 64 KiB buffer each
//! would cost an idle guest 128 KiB, while large buffers under load let one system call
//! carry many frames.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct GrowingBufReader<R> {
    inner: R,
    buf: BytesMut,
    /// The size of the buffer's allocation at the last read.
    alloc: usize,
    /// The capacity the next read gets.
    want: usize,
    min: usize,
    max: usize,
}

impl<R> GrowingBufReader<R> {
    /// Starts with `min` bytes of buffer (allocated at the first read) and grows up to `max`.
    pub(crate) fn new(inner: R, min: usize, max: usize) -> Self {
        GrowingBufReader {
            inner,
            buf: BytesMut::new(),
            alloc: 0,
            want: min,
            min,
            max: max.max(min),
        }
    }

    /// The wrapped reader.
    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The capacity the next read will get.
    #[cfg(test)]
    fn next_capacity(&self) -> usize {
        self.want
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for GrowingBufReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            if this.alloc > 2 * this.want {
                // Quiet again after a burst: give the large buffer back.
                this.buf = BytesMut::new();
            }
            this.buf.clear();
            this.buf.reserve(this.want);
            let room = this.buf.capacity();
            this.alloc = room;
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.buf
            ))?;
            if n >= room {
                this.want = (this.want * 2).min(this.max);
            } else if n < this.want / 8 {
                this.want = (this.want / 2).max(this.min);
            }
        }
        Poll::Ready(Ok(&this.buf[..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.buf.advance(amt.min(this.buf.len()));
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for GrowingBufReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_pass_unchanged_and_the_buffer_follows_the_traffic() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = GrowingBufReader::new(rx, 16, 256);
        // A burst: reads fill the buffer, which doubles up to the limit.
        let burst: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&burst).await.expect("write");
        let mut got = vec![0u8; burst.len()];
        reader.read_exact(&mut got).await.expect("read");
        assert_eq!(got, burst);
        assert_eq!(reader.next_capacity(), 256);
        // Small reads again: it shrinks back step by step.
        for _ in 0..8 {
            tx.write_all(b"x").await.expect("write");
            let chunk = reader.fill_buf().await.expect("fill").to_vec();
            assert_eq!(chunk, b"x");
            reader.consume(1);
        }
        assert_eq!(reader.next_capacity(), 16);
        drop(tx);
        assert!(reader.fill_buf().await.expect("end").is_empty());
    }

    #[tokio::test]
    async fn copy_buf_forwards_everything() {
        let (mut tx, rx) = tokio::io::duplex(4096);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            tx.write_all(&data).await.expect("write");
        });
        let mut reader = GrowingBufReader::new(rx, 64, 64 * 1024);
        let mut out = Vec::new();
        tokio::io::copy_buf(&mut reader, &mut out)
            .await
            .expect("copy");
        writer.await.expect("writer");
        assert_eq!(out, expected);
    }
}
