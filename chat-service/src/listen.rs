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
    /// An address could not be bound. The message says it all in one line (what the system
    /// said is part of it, not a separate cause that would print it a second time), and for an
    /// address in use, which flag sets the port and how to pick another.
    #[error("cannot listen on {addr}: {}", explain(error, *flag))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        error: std::io::Error,
        /// The flag that sets this address's port, if the caller named one.
        flag: Option<&'static str>,
    },
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoAddress,
}

/// What went wrong binding, in words; for an address in use, how to pick another port.
fn explain(error: &std::io::Error, flag: Option<&str>) -> String {
    if error.kind() != std::io::ErrorKind::AddrInUse {
        return error.to_string();
    }
    let taken = "the address is already in use (by another program, or another copy of this one)";
    match flag {
        Some(flag) => {
            format!("{taken}; {flag} sets this port, and {flag} 0 picks a free one")
        }
        None => taken.to_owned(),
    }
}

/// Parses every `--listen` value (see [`parse_listen`]).
pub fn parse_listen_all(values: &[String], port: u16) -> Result<Vec<SocketAddr>, String> {
    values.iter().map(|s| parse_listen(s, port)).collect()
}

/// A service's bound listening sockets.
#[derive(Debug)]
pub struct Listeners(Vec<TcpListener>);

impl Listeners {
    /// Binds every address, in order; the first failure names its address. These are a
    /// service's main listeners, whose port `--port` sets (the server's and the relay's
    /// alike): an address in use is reported with that flag.
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Listeners, ListenError> {
        Self::bind_for(addrs, Some("--port")).await
    }

    /// [`Listeners::bind`], for addresses whose port `flag` sets: an address in use is
    /// reported with that flag and how to pick another port.
    pub async fn bind_for(
        addrs: &[SocketAddr],
        flag: Option<&'static str>,
    ) -> Result<Listeners, ListenError> {
        if addrs.is_empty() {
            return Err(ListenError::NoAddress);
        }
        let mut listeners = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            listeners.push(bind_one(addr, flag).await?);
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

/// Binds one address whose port `flag` sets (see [`Listeners::bind_for`]).
pub async fn bind_one(
    addr: SocketAddr,
    flag: Option<&'static str>,
) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ListenError::Bind { addr, error, flag })
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

    #[tokio::test]
    async fn an_address_in_use_is_named_once_with_the_flag_that_moves_it() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let e = Listeners::bind_for(&[addr], Some("--http-port"))
            .await
            .expect_err("in use");
        let text = e.to_string();
        assert_eq!(text.matches("in use").count(), 1, "{text}");
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.contains("--http-port 0 picks a free one"), "{text}");
        assert!(
            std::error::Error::source(&e).is_none(),
            "nothing printed twice"
        );
    }
}
