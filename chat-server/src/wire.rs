//! A connection's two ends as the session (reading) and the outbox (writing) use them: plain
//! TCP, or TLS over TCP.
//!
//! With TLS both ends share one rustls connection behind a short lock, never held across an
//! await: reading decrypts what the socket has, writing encrypts and hands the socket what it
//! takes at once, leaving the rest in rustls's buffer for [`WireWrite::poll_flush`]. Writing a
//! whole batch of frames with one call encrypts it into as few records as fit (up to 16 KiB
//! each), never one record per frame.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use chat_service::tls::rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A TLS connection's state, shared by its reading and writing ends.
#[derive(Debug)]
pub(crate) struct TlsLink {
    conn: Mutex<ServerConnection>,
    socket: TcpStream,
}

impl TlsLink {
    /// The state of a connection whose handshake is done.
    pub(crate) fn new(socket: TcpStream, conn: ServerConnection) -> Arc<TlsLink> {
        Arc::new(TlsLink {
            conn: Mutex::new(conn),
            socket,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self) -> SocketIo<'_> {
        SocketIo(&self.socket)
    }

    /// Decrypted bytes are waiting to be read.
    fn has_plaintext(&self) -> bool {
        let mut conn = self.lock();
        conn.process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut conn = self.lock();
                match conn.reader().read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        // 0 after the peer's close_notify: the end.
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed the socket without a close_notify: the end all the same.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
                match conn.read_tls(&mut self.io()) {
                    Ok(0) => return Poll::Ready(Ok(())),
                    Ok(_) => {
                        conn.process_new_packets()
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        // An alert or a key update to answer: sent if the socket takes it.
                        flush_some(&mut conn, self.io())?;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            ready!(self.socket.poll_read_ready(cx))?;
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = self.lock();
        let n = conn.writer().write_vectored(bufs)?;
        flush_some(&mut conn, self.io())?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // rustls's buffer is full of what the socket has not taken yet.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Whether encrypted bytes wait for the socket.
    fn pending(&self) -> bool {
        self.lock().wants_write()
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut conn = self.lock();
                flush_some(&mut conn, self.io())?;
                if !conn.wants_write() {
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(self.socket.poll_write_ready(cx))?;
        }
    }

    /// Says goodbye (close_notify) and shuts the sending side; best effort, never waits.
    fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        {
            let mut conn = self.lock();
            conn.send_close_notify();
            let _ = flush_some(&mut conn, self.io());
        }
        socket2::SockRef::from(&self.socket).shutdown(how)
    }
}

/// Hands the socket as much of what rustls has encrypted as it takes now.
fn flush_some(conn: &mut ServerConnection, mut io: SocketIo<'_>) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut io) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The socket as rustls reads and writes it: non-blocking, `WouldBlock` when it cannot.
struct SocketIo<'a>(&'a TcpStream);

impl Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The end a session reads from.
#[derive(Debug)]
pub(crate) enum WireRead {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS.
    Tls(Arc<TlsLink>),
}

impl WireRead {
    /// Ready once something can be read (decrypted bytes already waiting count).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            WireRead::Tcp(half) => half.as_ref().poll_read_ready(cx),
            WireRead::Tls(link) if link.has_plaintext() => Poll::Ready(Ok(())),
            WireRead::Tls(link) => link.socket.poll_read_ready(cx),
        }
    }
}

impl AsyncRead for WireRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WireRead::Tcp(half) => Pin::new(half).poll_read(cx, buf),
            WireRead::Tls(link) => link.poll_read(cx, buf),
        }
    }
}

/// The end the outbox writes to (the hub directly, or the connection's writer).
#[derive(Debug)]
pub(crate) enum WireWrite {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS.
    Tls(Arc<TlsLink>),
}

impl WireWrite {
    /// Writes what the socket takes now (for TLS: encrypts what rustls's buffer takes and
    /// hands the socket what it takes); `WouldBlock` when nothing was taken.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            WireWrite::Tcp(half) => half.try_write_vectored(bufs),
            WireWrite::Tls(link) => link.try_write_vectored(bufs),
        }
    }

    /// Writes some of `bufs` once the socket can take them.
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            let ready = match self {
                WireWrite::Tcp(half) => half.as_ref().poll_write_ready(cx),
                WireWrite::Tls(link) => link.socket.poll_write_ready(cx),
            };
            ready!(ready)?;
            match self.try_write_vectored(bufs) {
                // Readiness was stale: tokio has cleared it, so the next poll waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    /// Whether written bytes still wait to reach the socket (encrypted, for TLS).
    pub(crate) fn pending(&self) -> bool {
        match self {
            WireWrite::Tcp(_) => false,
            WireWrite::Tls(link) => link.pending(),
        }
    }

    /// Hands the socket what waits for it, as it can take it.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            WireWrite::Tcp(_) => Poll::Ready(Ok(())),
            WireWrite::Tls(link) => link.poll_flush(cx),
        }
    }

    /// Shuts the socket down (`how`), saying goodbye first over TLS.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            WireWrite::Tcp(half) => socket2::SockRef::from(half.as_ref()).shutdown(how),
            WireWrite::Tls(link) => link.shutdown(how),
        }
    }
}

impl AsyncWrite for WireWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_vectored_pinless(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_vectored_pinless(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        WireWrite::poll_flush(self.get_mut(), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(WireWrite::poll_flush(this, cx))?;
        Poll::Ready(this.shutdown(std::net::Shutdown::Write))
    }
}

impl WireWrite {
    fn poll_write_vectored_pinless(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        WireWrite::poll_write_vectored(self, cx, bufs)
    }
}
