//! `chat-server`: parses the command line, sets up console logging, and runs the server until
//! Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use chat_server::{Cli, Server};

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
    let default_log = directories::ProjectDirs::from("", "", "chat-suite")
        .map(|dirs| dirs.data_dir().join("messages.jsonl"));
    let config = cli.into_config(default_log)?;
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
    if config.relay_secret.is_some() {
        tracing::info!("relayed guests: accepted from relays presenting the secret");
    }
    server.run(shutdown_signal()).await;
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
