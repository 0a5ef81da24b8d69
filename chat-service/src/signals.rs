//! Ctrl-C and SIGTERM, the signals that stop a service gracefully, and SIGHUP, which reloads
//! its certificate and reopens its log.

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

/// SIGHUP, handled from the start of a service (its default action would end the process): a
/// `systemctl reload` during a slow start (a certificate being made) waits for [`Hangups::serve`].
#[derive(Debug)]
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Starts catching SIGHUP (a warning when it cannot be).
    pub fn install() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup()).ok();
            if signal.is_none() {
                tracing::warn!(
                    "cannot handle SIGHUP: the certificate is read and the log opened at start only"
                );
            }
            Hangups { signal }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    /// At every SIGHUP: opens the log (`what`, for the console) again before its next record
    /// (after logrotate renamed the file), and reads the TLS certificate again (a renewed one
    /// is served to the next connections; those open keep theirs; one that cannot be used is
    /// reported and the old one stays).
    pub async fn serve(
        self,
        tls: Option<std::sync::Arc<crate::tls::Reloadable>>,
        log: crate::jsonl::Reopen,
        what: &str,
    ) {
        #[cfg(unix)]
        {
            let Some(mut signal) = self.signal else {
                return;
            };
            while signal.recv().await.is_some() {
                log.request();
                tracing::info!("SIGHUP: the {what} is opened again before its next record");
                let Some(tls) = &tls else { continue };
                match tls.reload() {
                    Ok(fingerprint) => tracing::info!("TLS certificate reloaded: {fingerprint}"),
                    Err(e) => {
                        tracing::error!("TLS certificate not reloaded, the old one stays: {e}")
                    }
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (self, tls, log, what);
    }
}
