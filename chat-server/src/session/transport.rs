//! Opening a connection's wire: TLS when the client's first byte starts a TLS handshake,
//! plain TCP otherwise. Plain connections are answered only from addresses where they are
//! harmless (the server's own machine, unless `--plaintext-from any`); the check is made on
//! the first frame, so that the refusal can be said in a version the client knows.

use std::net::SocketAddr;

use chat_core::protocol::RejectReason;
use chat_service::tls::TLS_HANDSHAKE_BYTE;
use chat_service::tls::tokio_rustls::TlsAcceptor;
use tokio::net::TcpStream;

use super::Shared;
use super::handshake::Refusal;
use crate::wire::{TlsLink, WireRead, WireWrite};

/// The connection's two ends, or why there are none: a refusal to tell in plain words, or
/// (`None` in it) a connection that ended before saying anything.
pub(super) async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<(WireRead, WireWrite), (Box<Refusal>, Option<(WireRead, WireWrite)>)> {
    let _ = stream.set_nodelay(true);
    let Some(tls) = &shared.tls else {
        return Ok(plain(stream));
    };
    let timeout = shared.config.hello_timeout;
    let mut first = [0u8; 1];
    let tls_first = match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == TLS_HANDSHAKE_BYTE,
        // Silent, or gone: the plain path says so as it would.
        _ => false,
    };
    if !tls_first {
        return Ok(plain(stream));
    }
    let accept = TlsAcceptor::from(tls.config()).accept(stream);
    match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(stream)) => {
            let (socket, conn) = stream.into_inner();
            let link = TlsLink::new(socket, conn);
            Ok((WireRead::Tls(link.clone()), WireWrite::Tls(link)))
        }
        Ok(Err(e)) => Err((
            Box::new(Refusal::silent(format!("TLS handshake failed: {e}"), peer)),
            None,
        )),
        Err(_) => Err((
            Box::new(Refusal::silent(
                format!("no TLS handshake within {} s", timeout.as_secs()),
                peer,
            )),
            None,
        )),
    }
}

fn plain(stream: TcpStream) -> (WireRead, WireWrite) {
    let (r, w) = stream.into_split();
    (WireRead::Tcp(r), WireWrite::Tcp(w))
}

impl Shared {
    /// Whether a plain (unencrypted) connection from `peer` may be served.
    pub(super) fn plain_allowed(&self, peer: SocketAddr) -> bool {
        let Some(tls) = &self.config.tls else {
            return true;
        };
        tls.plaintext_from
            .allows(peer.ip(), self.config.loopback_is_remote)
    }
}

/// The refusal of a plain connection from where only TLS is served, as a client speaking
/// protocol `version` can decode it.
pub(super) fn tls_required(version: u16, addr: SocketAddr) -> Refusal {
    Refusal::new(
        RejectReason::TlsRequired.for_version(version),
        "this server accepts unencrypted connections only from its own machine: connect \
         with TLS (chat-tui does so unless --plaintext is given)",
        addr,
    )
}
