//! `chat-server`: parses the command line, sets up console logging, and runs the server until
//! Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use chat_core::service::ShutdownSignals;
use chat_server::{Cli, Server};

/// mimalloc instead of the system allocator: with thousands of connections coming and going,
/// glibc's malloc keeps far more memory than the server uses (measured in
/// docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match serve(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install().context("cannot handle Ctrl-C and SIGTERM")?;
    let dirs = directories::ProjectDirs::from("", "", "chat-suite");
    if dirs.is_none() && cli.db.is_none() {
        tracing::warn!(
            "no data folder (is HOME set?): accounts, rooms and history are kept in memory only \
             and lost when the server stops; give --db PATH to keep them"
        );
    }
    let config = cli.into_config(dirs.as_ref().map(|d| d.data_dir()))?;
    let server = Server::bind(config.clone())
        .await
        .context("cannot start the server")?;
    for addr in server.local_addrs() {
        tracing::info!(
            "chat-server {} listening on {addr}",
            env!("CARGO_PKG_VERSION")
        );
    }
    match &config.log_file {
        Some(path) => tracing::info!("message log: {}", path.display()),
        None => tracing::info!("message log: off"),
    }
    tracing::info!("database: {}", config.db);
    match server.monitor() {
        Some(m) => {
            tracing::info!("monitor: open {}", m.url());
            if let Some(ws) = m.ws {
                tracing::info!("monitor: WebSocket feed also on ws://{ws}/?token=...");
            }
        }
        None => tracing::info!("monitor: off"),
    }
    if config.relay_secret.is_some() {
        tracing::info!("relayed guests: accepted from relays presenting the secret");
    }
    server
        .run(async {
            let which = signals.wait().await;
            tracing::info!("{which} received");
        })
        .await;
    Ok(())
}
