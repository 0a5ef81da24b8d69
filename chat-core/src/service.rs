//! Pieces shared by the suite's network services (the server and the relay): listen addresses
//! and the relay secret.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for comparing or sending.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from the first line of a file; an empty secret is an error.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
        let secret = Secret::from(text.lines().next().unwrap_or(""));
        if secret.0.is_empty() {
            return Err(format!("the secret file {} is empty", path.display()));
        }
        Ok(secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

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

/// Binds every address, in order; the first failure names its address.
pub async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<tokio::net::TcpListener>, ListenError> {
    if addrs.is_empty() {
        return Err(ListenError::NoAddress);
    }
    let mut listeners = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Accepts the next connection, or `None` once `shutdown` is cancelled. Accept errors
/// (typically: out of file descriptors) are logged and retried after a growing pause (10 ms
/// up to 1 s) instead of spinning.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
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

/// Ctrl-C and SIGTERM, registered once (before binding, so that a signal arriving during
/// start-up is not lost and does not kill the process without a goodbye).
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Registers the handlers.
    pub fn install() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// Resolves on the first Ctrl-C or SIGTERM, with its name.
    pub async fn wait(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "Ctrl-C",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
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

    #[test]
    fn secrets_stay_secret() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }
}
