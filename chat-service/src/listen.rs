//! Listening: `--listen` addresses, binding them, and accepting connections without spinning
//! on errors.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Parses a `--listen` value: `127.0.0.1`, `::1`, `0.0.0.0:4000` or `[::1]:4000`; addresses
/// without a port get `port`.
pub fn parse_listen(s: &str, port: u16) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, port)),
        Err(_) => Err(format!(
            "--listen {s:?}: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1, \
             optionally with a port (127.0.0.1:4000, [::1]:4000)"
        )),
    }
}

/// Why the listening sockets could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoAddress,
}

/// Parses every `--listen` value (see [`parse_listen`]).
pub fn parse_listen_all(values: &[String], port: u16) -> Result<Vec<SocketAddr>, String> {
    values.iter().map(|s| parse_listen(s, port)).collect()
}

/// A service's bound listening sockets.
#[derive(Debug)]
pub struct Listeners(Vec<TcpListener>);

impl Listeners {
    /// Binds every address, in order; the first failure names its address.
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Listeners, ListenError> {
        if addrs.is_empty() {
            return Err(ListenError::NoAddress);
        }
        let mut listeners = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError::Bind { addr, source })?;
            listeners.push(listener);
        }
        Ok(Listeners(listeners))
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.0.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// The sockets, to accept on.
    pub fn into_inner(self) -> Vec<TcpListener> {
        self.0
    }
}

/// Accepts the next connection, or `None` once `shutdown` is cancelled. Accept errors
/// (typically: out of file descriptors) are logged and retried after a growing pause (10 ms
/// up to 1 s) instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    let mut backoff = std::time::Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return None,
            res = listener.accept() => res,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {} ms", backoff.as_millis());
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let p = |s| parse_listen(s, 12345);
        assert_eq!(p("127.0.0.1"), Ok("127.0.0.1:12345".parse().expect("addr")));
        assert_eq!(p("::1"), Ok("[::1]:12345".parse().expect("addr")));
        assert_eq!(p("[::1]"), Ok("[::1]:12345".parse().expect("addr")));
        assert_eq!(p("0.0.0.0:4000"), Ok("0.0.0.0:4000".parse().expect("addr")));
        assert_eq!(p("[::1]:4000"), Ok("[::1]:4000".parse().expect("addr")));
        assert!(p("localhost").is_err());
    }
}
