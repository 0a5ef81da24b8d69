//! `chat-relay`: parses the command line and relays until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use chat_relay::Relay;
use chat_relay::cli::{Cli, Command};
use chat_service::ShutdownSignals;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let loaded = chat_service::config_file::load::<Cli>("chat-relay.toml");
    if let Some(Command::Print(page)) = loaded.cli.command {
        return page.show(&loaded);
    }
    let cli = loaded.into_cli();
    chat_service::console::init_logging(cli.log_format);
    match serve(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> Result<(), String> {
    let signals =
        ShutdownSignals::install().map_err(|e| format!("cannot handle Ctrl-C and SIGTERM: {e}"))?;
    let hangups = chat_service::signals::Hangups::install();
    let dirs = directories::ProjectDirs::from("", "", "chat-suite");
    let config = cli.into_config(dirs.as_ref().map(|d| d.data_dir()))?;
    let relay = Relay::bind(config.clone())
        .await
        .map_err(|e| format!("cannot start the relay: {e}"))?;
    if let Some(tls) = relay.tls() {
        tracing::info!(
            "TLS certificate {} ({}): guests see this fingerprint the first time they connect",
            tls.fingerprint(),
            tls.source().files().0.display()
        );
    }
    for addr in relay.local_addrs() {
        tracing::info!(
            "chat-relay {} listening on {addr}, relaying to {}",
            env!("CARGO_PKG_VERSION"),
            config.server
        );
    }
    tokio::spawn(hangups.serve(relay.tls(), relay.log_reopen(), "connection log"));
    match &config.log_file {
        Some(path) => tracing::info!("connection log: {}", path.display()),
        None => tracing::info!("connection log: off (--log-file to keep one)"),
    }
    relay
        .run(async {
            let which = signals.wait().await;
            tracing::info!("{which} received; closing every connection");
        })
        .await;
    Ok(())
}
