//! A typed, framed connection over any `AsyncRead + AsyncWrite`.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{SinkExt, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::frame::{FrameCodec, FrameError};
use crate::protocol::{ClientFrame, ServerFrame};

/// Initial read-buffer size. Kept small so that idle connections stay cheap; it grows as
/// larger frames arrive.
const INITIAL_READ_BUFFER: usize = 256;

/// Reads frames of type `In`.
pub struct FrameReader<R, In> {
    inner: FramedRead<R, FrameCodec<In, ()>>,
}

impl<R, In> fmt::Debug for FrameReader<R, In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("max_frame", &self.inner.decoder().max_frame())
            .field("buffered", &self.inner.read_buffer().len())
            .finish()
    }
}

impl<R: AsyncRead + Unpin, In: DeserializeOwned> FrameReader<R, In> {
    /// Reads frames of at most `max_frame` payload bytes from `reader`.
    pub fn new(reader: R, max_frame: usize) -> Self {
        FrameReader {
            inner: FramedRead::with_capacity(
                reader,
                FrameCodec::new(max_frame),
                INITIAL_READ_BUFFER,
            ),
        }
    }

    /// The next frame; `Ok(None)` when the peer closed the connection between frames.
    /// Cancel-safe: a frame is never half-consumed.
    pub async fn recv(&mut self) -> Result<Option<In>, FrameError> {
        self.inner.next().await.transpose()
    }

    /// [`FrameReader::recv`] as a poll function: for a caller that waits on several things
    /// without keeping a future for each.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<In>, FrameError>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(Option::transpose)
    }

    /// Gives the read buffer back if it holds nothing (no part of a frame), so that a reader
    /// waiting for input holds no buffer; a server with thousands of idle connections saves
    /// that much per connection. Call [`FrameReader::reserve_buffer`] once input is ready,
    /// before [`FrameReader::recv`], or the first read is tiny.
    pub fn release_buffer(&mut self) {
        let buf = self.inner.read_buffer_mut();
        if buf.is_empty() && buf.capacity() > 0 {
            *buf = bytes::BytesMut::new();
        }
    }

    /// Makes room in the read buffer for at least a small frame (after
    /// [`FrameReader::release_buffer`]).
    pub fn reserve_buffer(&mut self) {
        self.inner.read_buffer_mut().reserve(INITIAL_READ_BUFFER);
    }

    /// Changes the payload limit for the frames that follow.
    pub fn set_max_frame(&mut self, max: usize) {
        self.inner.decoder_mut().set_max_frame(max);
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.inner.read_buffer().len()
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }

    /// The underlying reader; bytes buffered but not yet decoded are dropped.
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    /// The underlying reader and the bytes received but not yet decoded (the start of the
    /// next frames), for handing the connection over to something that forwards raw bytes.
    /// Call it between frames, i.e. after [`FrameReader::recv`] returned.
    pub fn into_parts(self) -> (R, bytes::BytesMut) {
        let parts = self.inner.into_parts();
        (parts.io, parts.read_buf)
    }
}

/// Writes frames of type `Out`.
pub struct FrameWriter<W, Out> {
    inner: FramedWrite<W, FrameCodec<(), Out>>,
}

impl<W, Out> fmt::Debug for FrameWriter<W, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameWriter")
            .field("max_frame", &self.inner.encoder().max_frame())
            .finish()
    }
}

impl<W: AsyncWrite + Unpin, Out: Serialize> FrameWriter<W, Out> {
    /// Writes frames of at most `max_frame` payload bytes to `writer`.
    pub fn new(writer: W, max_frame: usize) -> Self {
        FrameWriter {
            inner: FramedWrite::new(writer, FrameCodec::new(max_frame)),
        }
    }

    /// Writes one frame and flushes it.
    pub async fn send(&mut self, frame: &Out) -> Result<(), FrameError> {
        self.inner.send(frame).await
    }

    /// Queues one frame without flushing (see [`FrameWriter::flush`]).
    pub async fn feed(&mut self, frame: &Out) -> Result<(), FrameError> {
        self.inner.feed(frame).await
    }

    /// Flushes queued frames.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        SinkExt::<&Out>::flush(&mut self.inner).await
    }

    /// Flushes and shuts down the write side (the peer sees end of stream).
    pub async fn close(&mut self) -> Result<(), FrameError> {
        SinkExt::<&Out>::close(&mut self.inner).await
    }

    /// Changes the payload limit for the frames that follow.
    pub fn set_max_frame(&mut self, max: usize) {
        self.inner.encoder_mut().set_max_frame(max);
    }

    /// The underlying writer, for writing pre-encoded frames.
    pub fn get_mut(&mut self) -> &mut W {
        self.inner.get_mut()
    }

    /// The underlying writer. Frames fed but not flushed are dropped: flush first.
    pub fn into_inner(self) -> W {
        self.inner.into_inner()
    }
}

/// Both directions of a framed connection: reads `In`, writes `Out`.
#[derive(Debug)]
pub struct Connection<R, W, In, Out> {
    /// The reading half.
    pub reader: FrameReader<R, In>,
    /// The writing half.
    pub writer: FrameWriter<W, Out>,
}

/// A client's view of a TCP connection to a server.
pub type ClientConnection = Connection<OwnedReadHalf, OwnedWriteHalf, ServerFrame, ClientFrame>;
/// A server's view of a TCP connection from a client.
pub type ServerConnection = Connection<OwnedReadHalf, OwnedWriteHalf, ClientFrame, ServerFrame>;

impl<In: DeserializeOwned, Out: Serialize> Connection<OwnedReadHalf, OwnedWriteHalf, In, Out> {
    /// Wraps a TCP stream, with Nagle's algorithm turned off (chat is latency-bound).
    pub fn tcp(stream: TcpStream, max_frame: usize) -> std::io::Result<Self> {
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Connection::new(r, w, max_frame))
    }
}

impl<S, In, Out> Connection<ReadHalf<S>, WriteHalf<S>, In, Out>
where
    S: AsyncRead + AsyncWrite,
    In: DeserializeOwned,
    Out: Serialize,
{
    /// Wraps any bidirectional stream (TLS, Unix socket, in-memory duplex, ...).
    pub fn from_stream(stream: S, max_frame: usize) -> Self {
        let (r, w) = tokio::io::split(stream);
        Connection::new(r, w, max_frame)
    }
}

impl<R, W, In, Out> Connection<R, W, In, Out>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    In: DeserializeOwned,
    Out: Serialize,
{
    /// Combines a reader and a writer.
    pub fn new(reader: R, writer: W, max_frame: usize) -> Self {
        Connection {
            reader: FrameReader::new(reader, max_frame),
            writer: FrameWriter::new(writer, max_frame),
        }
    }

    /// The next frame; see [`FrameReader::recv`].
    pub async fn recv(&mut self) -> Result<Option<In>, FrameError> {
        self.reader.recv().await
    }

    /// Writes and flushes one frame.
    pub async fn send(&mut self, frame: &Out) -> Result<(), FrameError> {
        self.writer.send(frame).await
    }

    /// Changes the payload limit in both directions.
    pub fn set_max_frame(&mut self, max: usize) {
        self.reader.set_max_frame(max);
        self.writer.set_max_frame(max);
    }

    /// Separates the halves so they can be used from different tasks.
    pub fn split(self) -> (FrameReader<R, In>, FrameWriter<W, Out>) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::frame::encode_frame;
    use crate::protocol::{Body, Outgoing, Target};

    fn ping(nonce: u64) -> ClientFrame {
        ClientFrame::Ping { nonce }
    }

    #[tokio::test]
    async fn releasing_the_buffer_keeps_a_partly_received_frame() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let mut reader: FrameReader<_, ClientFrame> = FrameReader::new(rx, 1024);
        let first = encode_frame(&ping(1), 1024).expect("encode");
        let second = encode_frame(&ping(2), 1024).expect("encode");
        tx.write_all(&first).await.expect("write");
        tx.write_all(&second[..3]).await.expect("write");
        assert_eq!(reader.recv().await.expect("frame"), Some(ping(1)));
        // Part of the second frame is buffered: releasing must not drop it.
        assert!(reader.buffered() > 0);
        reader.release_buffer();
        tx.write_all(&second[3..]).await.expect("write");
        assert_eq!(reader.recv().await.expect("frame"), Some(ping(2)));
        // Nothing buffered: the buffer goes, and comes back for the next frame.
        assert_eq!(reader.buffered(), 0);
        reader.release_buffer();
        reader.reserve_buffer();
        // Larger than the initial buffer: it grows.
        let text = Outgoing {
            tag: 3,
            to: Target::Room("lobby".into()),
            body: Body::Text("x".repeat(600)),
            attrs: Vec::new(),
        };
        let long = ClientFrame::Send(text);
        tx.write_all(&encode_frame(&long, 1024).expect("encode"))
            .await
            .expect("write");
        assert_eq!(reader.recv().await.expect("frame"), Some(long));
    }
}
