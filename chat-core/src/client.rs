//! The client API used by the terminal client, the relay, the tests and the load generator:
//! connect and handshake, then a sending half and a receiving half.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::connection::{Connection, FrameReader, FrameWriter};
use crate::frame::FrameError;
use crate::protocol::{
    Body, ClientFrame, HANDSHAKE_MAX_FRAME, Hello, MAX_SERVER_FRAME, MessageAttr, Outgoing,
    PROTOCOL_VERSION, Password, Rejected, RelayHello, ServerFrame, Target, Welcome,
};

/// What to say in the handshake.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Requested nickname.
    pub nick: String,
    /// Client software name and version.
    pub client: String,
    /// Account password, if any (its `Debug` is redacted).
    pub password: Option<Password>,
    /// Time allowed for connecting and completing the handshake.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Options for `nick` with a 10-second handshake timeout.
    pub fn new(nick: impl Into<String>) -> Self {
        ConnectOptions {
            nick: nick.into(),
            client: concat!("chat-core/", env!("CARGO_PKG_VERSION")).to_owned(),
            password: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the client software name.
    pub fn client(mut self, client: impl Into<String>) -> Self {
        self.client = client.into();
        self
    }
}

/// Why connecting failed, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {}", describe_io(.source))]
    Connect {
        /// The address tried.
        addr: String,
        /// What the system said.
        source: io::Error,
    },
    /// The handshake did not complete in time.
    #[error("no answer from {addr} within {secs} s (is it a chat server?)")]
    Timeout {
        /// The address tried.
        addr: String,
        /// The timeout.
        secs: u64,
    },
    /// The server refused the handshake.
    #[error("the server refused the connection: {}", .0.message)]
    Rejected(Rejected),
    /// The server closed the connection before answering.
    #[error("the server closed the connection during the handshake")]
    Closed,
    /// The server's answer broke the protocol.
    #[error("protocol error during the handshake: {0} (is it a chat server?)")]
    Protocol(#[from] FrameError),
    /// The server answered the handshake with something other than Welcome or Rejected.
    #[error("unexpected answer to the handshake: {0}")]
    Unexpected(String),
    /// The server's certificate neither chains to the web's roots nor has the fingerprint
    /// this client trusts for it: a first connection (ask the user), or a changed certificate
    /// (refuse).
    #[error("the certificate of {server} is not trusted yet (fingerprint {fingerprint})")]
    Untrusted {
        /// The server, `host:port`.
        server: String,
        /// The certificate's fingerprint.
        fingerprint: String,
    },
    /// The TLS handshake failed for another reason.
    #[error("TLS with {server} failed: {reason}")]
    Tls {
        /// The server, `host:port`.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

/// How a client protects its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// TLS, trusting a certificate that chains to the web's roots or has the fingerprint
    /// `pinned` (accepted before, see [`crate::tls::KnownServers`]).
    Tls {
        /// The fingerprint trusted for this server, if any.
        pinned: Option<String>,
    },
    /// No encryption: for a server on this machine (servers refuse it from elsewhere).
    Plain,
}

/// Any stream a client speaks over (TCP, TLS).
pub trait NetStream: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> NetStream for T {}

/// A client over plain TCP or TLS.
pub type NetClient = Client<ReadHalf<Box<dyn NetStream>>, WriteHalf<Box<dyn NetStream>>>;

/// Connects to `addr` (`host:port`) as `security` says, and performs the handshake.
pub async fn connect_secured(
    addr: &str,
    opts: &ConnectOptions,
    security: &Security,
) -> Result<NetClient, ClientError> {
    let timeout = opts.timeout;
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn NetStream> = match security {
            Security::Plain => Box::new(stream),
            Security::Tls { pinned } => {
                Box::new(tls_handshake(stream, addr, pinned.clone()).await?)
            }
        };
        let conn = Connection::from_stream(stream, HANDSHAKE_MAX_FRAME);
        handshake(conn, None, opts).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_owned(),
            secs: timeout.as_secs(),
        })?
}

/// The TLS handshake with `addr` over `stream`, trusting the web's roots and `pinned`.
pub async fn tls_handshake(
    stream: TcpStream,
    addr: &str,
    pinned: Option<String>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    let failed = |reason: String| ClientError::Tls {
        server: addr.to_owned(),
        reason,
    };
    let seen = Arc::new(Mutex::new(None));
    let config =
        crate::tls::client_config(pinned, seen.clone()).map_err(|e| failed(e.to_string()))?;
    let name = crate::tls::server_name(addr)
        .ok_or_else(|| failed(format!("{addr:?} is not a host name or an address")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match connector.connect(name, stream).await {
        Ok(stream) => Ok(stream),
        Err(e) => {
            let untrusted = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
            match seen {
                Some(fingerprint) if untrusted => Err(ClientError::Untrusted {
                    server: addr.to_owned(),
                    fingerprint,
                }),
                _ => Err(failed(e.to_string())),
            }
        }
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running and listening there?)".to_owned()
        }
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// A connected, welcomed client over TCP.
pub type TcpClient = Client<OwnedReadHalf, OwnedWriteHalf>;

/// A connected client whose handshake succeeded.
#[derive(Debug)]
pub struct Client<R, W> {
    /// The server's welcome.
    pub welcome: Welcome,
    /// Sends frames.
    pub sender: ClientSender<W>,
    /// Receives frames.
    pub events: ClientEvents<R>,
}

/// Connects to `addr` (`host:port`) over TCP and performs the handshake.
pub async fn connect(addr: &str, opts: &ConnectOptions) -> Result<TcpClient, ClientError> {
    let timeout = opts.timeout;
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let conn = Connection::tcp(stream, HANDSHAKE_MAX_FRAME).map_err(|source| {
            ClientError::Connect {
                addr: addr.to_owned(),
                source,
            }
        })?;
        handshake(conn, None, opts).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_owned(),
            secs: timeout.as_secs(),
        })?
}

/// Performs the handshake on an open connection: an optional relay frame, `Hello`, then waits
/// for `Welcome` or `Rejected`. No timeout is applied here.
pub async fn handshake<R, W>(
    mut conn: Connection<R, W, ServerFrame, ClientFrame>,
    relay: Option<RelayHello>,
    opts: &ConnectOptions,
) -> Result<Client<R, W>, ClientError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if let Some(relay) = relay {
        conn.writer.feed(&ClientFrame::RelayHello(relay)).await?;
    }
    let hello = Hello {
        version: PROTOCOL_VERSION,
        nick: opts.nick.clone(),
        client: opts.client.clone(),
        password: opts.password.as_ref().map(|p| p.0.clone()),
    };
    conn.send(&ClientFrame::Hello(hello)).await?;
    // Server frames can be larger than what the server accepts (a Welcome carries the roster).
    conn.reader.set_max_frame(MAX_SERVER_FRAME);
    let welcome = match conn.recv().await {
        Ok(Some(ServerFrame::Welcome(w))) => w,
        Ok(Some(ServerFrame::Rejected(r))) => return Err(ClientError::Rejected(r)),
        Ok(Some(other)) => return Err(ClientError::Unexpected(format!("{other:?}"))),
        Ok(None) => return Err(ClientError::Closed),
        Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
            return Err(ClientError::Closed);
        }
        Err(e) => return Err(e.into()),
    };
    conn.writer.set_max_frame(welcome.limits.max_frame as usize);
    let (reader, writer) = conn.split();
    Ok(Client {
        welcome,
        sender: ClientSender {
            writer,
            next_tag: 1,
        },
        events: ClientEvents { reader },
    })
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Client<R, W> {
    /// The nickname the server assigned.
    pub fn nick(&self) -> &str {
        &self.welcome.nick
    }

    /// The next frame from the server; `Ok(None)` when it closed the connection.
    pub async fn recv(&mut self) -> Result<Option<ServerFrame>, FrameError> {
        self.events.next().await
    }
}

/// The sending half of a client.
#[derive(Debug)]
pub struct ClientSender<W> {
    writer: FrameWriter<W, ClientFrame>,
    next_tag: u64,
}

impl<W: AsyncWrite + Unpin> ClientSender<W> {
    /// Sends a text message to a room; returns its tag.
    pub async fn say(&mut self, room: &str, text: impl Into<String>) -> Result<u64, FrameError> {
        self.message(
            Target::Room(room.to_owned()),
            Body::Text(text.into()),
            Vec::new(),
        )
        .await
    }

    /// Sends an action (`/me`) to a room; returns its tag.
    pub async fn action(&mut self, room: &str, text: impl Into<String>) -> Result<u64, FrameError> {
        self.message(
            Target::Room(room.to_owned()),
            Body::Action(text.into()),
            Vec::new(),
        )
        .await
    }

    /// Sends a private message to one or several nicknames; returns its tag.
    pub async fn private<S: AsRef<str>>(
        &mut self,
        to: &[S],
        text: impl Into<String>,
    ) -> Result<u64, FrameError> {
        let to = to.iter().map(|s| s.as_ref().to_owned()).collect();
        self.message(Target::Users(to), Body::Text(text.into()), Vec::new())
            .await
    }

    /// Sends any message; returns the tag it was given.
    pub async fn message(
        &mut self,
        to: Target,
        body: Body,
        attrs: Vec<MessageAttr>,
    ) -> Result<u64, FrameError> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let frame = ClientFrame::Send(Outgoing {
            tag,
            to,
            body,
            attrs,
        });
        self.writer.send(&frame).await?;
        Ok(tag)
    }

    /// Asks for the members of a room.
    pub async fn who(&mut self, room: &str) -> Result<(), FrameError> {
        self.send(&ClientFrame::Who {
            room: room.to_owned(),
        })
        .await
    }

    /// Sends a ping.
    pub async fn ping(&mut self, nonce: u64) -> Result<(), FrameError> {
        self.send(&ClientFrame::Ping { nonce }).await
    }

    /// Says goodbye; the server answers with `Bye` and closes.
    pub async fn quit(&mut self, reason: impl Into<String>) -> Result<(), FrameError> {
        self.send(&ClientFrame::Quit {
            reason: reason.into(),
        })
        .await
    }

    /// Sends any frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), FrameError> {
        self.writer.send(frame).await
    }

    /// The underlying writer, for writing bytes directly (tests, tools). Anything written
    /// here must be whole frames, or the server will disconnect the client.
    pub fn get_mut(&mut self) -> &mut W {
        self.writer.get_mut()
    }

    /// Closes the write side of the connection.
    pub async fn close(&mut self) -> Result<(), FrameError> {
        self.writer.close().await
    }

    /// The underlying writer, for tools that write whole frames themselves (see
    /// [`crate::frame::encode_frame_into`]).
    pub fn into_inner(self) -> W {
        self.writer.into_inner()
    }
}

/// The receiving half of a client.
#[derive(Debug)]
pub struct ClientEvents<R> {
    reader: FrameReader<R, ServerFrame>,
}

impl<R: AsyncRead + Unpin> ClientEvents<R> {
    /// The next frame from the server; `Ok(None)` when it closed the connection.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<ServerFrame>, FrameError> {
        self.reader.recv().await
    }

    /// The underlying reader and the bytes received but not yet decoded, for tools that
    /// parse frames themselves. Call it between frames.
    pub fn into_parts(self) -> (R, bytes::BytesMut) {
        self.reader.into_parts()
    }
}
