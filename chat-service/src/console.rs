//! The console: what an operator reads on standard error.

use tracing_subscriber::EnvFilter;

/// Logs to standard error at `info` (or what `RUST_LOG` says), without module paths.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
