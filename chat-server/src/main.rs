//! `chat-server`: parses the command line, sets up console logging, and runs the server until
//! Ctrl-C or SIGTERM.

use std::cell::Cell;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use chat_server::config::{AdminCommand, Command};
use chat_server::{Cli, Server};
use chat_service::ShutdownSignals;

/// mimalloc instead of the system allocator: with thousands of connections coming and going,
/// glibc's malloc keeps far more memory than the server uses (measured in
/// docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let loaded = chat_service::config_file::load::<Cli>("chat-server.toml");
    if let Some(Command::Print(page)) = loaded.cli.command {
        return page.show(&loaded);
    }
    let cli = loaded.into_cli();
    chat_service::console::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(release_free_memory)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-server: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The server runs as a task so that everything it allocates comes from the workers'
    // heaps, which `release_free_memory` trims. A panic in it stays a panic.
    let result = runtime.block_on(async {
        match tokio::spawn(serve(cli)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("the server's task was cancelled: {e}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The shortest time between two trims of one worker thread's heap.
const TRIM_INTERVAL: Duration = Duration::from_millis(100);

thread_local! {
    static LAST_TRIM: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Called by each Tokio worker as it runs out of work: hands the memory its heap holds free
/// back to the system, at most once per [`TRIM_INTERVAL`].
///
/// mimalloc returns free memory only when the thread that owns it allocates again, so
/// without this a burst (10,000 logins, each sent the whole roster) leaves megabytes
/// resident in a server that has gone quiet (docs/performance.md, "Idle connections").
/// It is not exhaustive: a worker that goes idle within the interval of its last trim, or
/// whose heap another thread frees into afterwards, keeps that memory until it wakes again.
fn release_free_memory() {
    LAST_TRIM.with(|last| {
        let now = Instant::now();
        if !trim_due(last.get(), now) {
            return;
        }
        last.set(Some(now));
        // SAFETY: `mi_collect` takes no pointers and only works on the calling thread's heap
        // and mimalloc's own structures; it is safe to call at any time from any thread.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_collect(true);
        }
    });
}

fn trim_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|last| now.duration_since(last) >= TRIM_INTERVAL)
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install().context("cannot handle Ctrl-C and SIGTERM")?;
    let hangups = chat_service::signals::Hangups::install();
    let dirs = directories::ProjectDirs::from("", "", "chat-suite");
    if cli.command == Some(Command::Fingerprint) {
        let config = cli.into_config(dirs.as_ref().map(|d| d.data_dir()))?;
        let Some(tls) = config.tls else {
            anyhow::bail!("this server serves no TLS");
        };
        let identity = chat_service::tls::Identity::load(&tls.source)?;
        println!("{}", identity.fingerprint);
        return Ok(());
    }
    if let Some(Command::Admin {
        command: AdminCommand::Backup { path },
    }) = &cli.command
    {
        let path = path.clone();
        let config = cli.into_config(dirs.as_ref().map(|d| d.data_dir()))?;
        let chat_server::DbLocation::File(db) = config.db else {
            anyhow::bail!("the database is in memory (--db :memory:): there is nothing to back up");
        };
        let report = chat_server::store::backup(&db, &path).map_err(anyhow::Error::msg)?;
        println!(
            "{} backed up to {}: {} bytes, {} messages, schema version {}",
            db.display(),
            path.display(),
            report.bytes,
            report.messages,
            report.schema
        );
        return Ok(());
    }
    if let Some(Command::Admin { command }) = &cli.command {
        let command = command.clone();
        let config = cli.into_config(dirs.as_ref().map(|d| d.data_dir()))?;
        let chat_server::DbLocation::File(db) = config.db else {
            anyhow::bail!(
                "the database is in memory (--db :memory:): there is nothing to administer"
            );
        };
        let mut out = std::io::stdout().lock();
        chat_server::admin::run(&db, &command, &mut out).map_err(anyhow::Error::msg)?;
        return Ok(());
    }
    if dirs.is_none() && cli.db.is_none() {
        tracing::warn!(
            "no data folder (is HOME set?): accounts, rooms and history are kept in memory only \
             and lost when the server stops; give --db PATH to keep them"
        );
    }
    let data_dir = dirs.as_ref().map(|d| d.data_dir());
    let mut config = cli.into_config(data_dir)?;
    let token_file = keep_monitor_token(&mut config, data_dir);
    let server = Server::bind(config.clone())
        .await
        .context("cannot start the server")?;
    for addr in server.local_addrs() {
        tracing::info!(
            "chat-server {} listening on {addr}",
            env!("CARGO_PKG_VERSION")
        );
    }
    if let Some(tls) = server.tls() {
        let (cert, _) = tls.source().files();
        tracing::info!(
            "TLS certificate {} ({}): clients see this fingerprint the first time they connect",
            tls.fingerprint(),
            cert.display()
        );
        if config
            .tls
            .as_ref()
            .is_some_and(|t| t.plaintext_from == chat_server::config::PlaintextFrom::Any)
        {
            tracing::warn!(
                "--plaintext-from any: unencrypted connections are served from anywhere; their \
                 passwords and messages can be read on the way"
            );
        }
    }
    tokio::spawn(hangups.serve(server.tls(), server.log_reopen(), "message log"));
    match &config.log_file {
        Some(path) => tracing::info!("message log: {}", path.display()),
        None => tracing::info!("message log: off"),
    }
    tracing::info!("database: {}", config.db);
    match server.monitor() {
        Some(m) => {
            tracing::info!("monitor: open {}", m.url());
            if let Some(path) = &token_file {
                tracing::info!(
                    "monitor: token kept in {} (delete it for a new one)",
                    path.display()
                );
            }
            if let Some(feed) = m.feed_url() {
                tracing::info!("monitor: WebSocket feed also on {feed}?token=...");
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

/// Without `--monitor-token`, the monitor's token is the one kept in the data folder (made
/// there the first time), so that the link printed at start, and an open monitor tab, still
/// work after a restart. Returns the file it is kept in; `None` when the token was given, there
/// is no monitor or no data folder, or the file cannot be used (then the token is a new one, as
/// the console says).
fn keep_monitor_token(
    config: &mut chat_server::Config,
    data_dir: Option<&std::path::Path>,
) -> Option<std::path::PathBuf> {
    let monitor = config.monitor.as_mut()?;
    if monitor.token.is_some() {
        return None;
    }
    let path = data_dir?.join(chat_server::monitor::token::TOKEN_FILE);
    match chat_server::monitor::token::kept_token(&path) {
        Ok(token) => {
            monitor.token = Some(token);
            Some(path)
        }
        Err(e) => {
            tracing::warn!(
                "cannot keep the monitor token in {}: {e}; this run's token is a new one",
                path.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_trims_at_most_once_per_interval() {
        let start = Instant::now();
        assert!(trim_due(None, start));
        assert!(!trim_due(Some(start), start));
        assert!(!trim_due(Some(start), start + TRIM_INTERVAL / 2));
        assert!(trim_due(Some(start), start + TRIM_INTERVAL));
    }

    /// The process's resident memory, in bytes.
    fn resident() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS");
        kib * 1024
    }

    #[test]
    fn a_worker_gives_back_what_another_thread_freed_into_its_heap() {
        const BLOCKS: usize = 64 * 1024;
        // The burst after a storm of logins, in small: one thread allocates (and touches)
        // 64 MiB, another frees it all. Until the owner collects, mimalloc keeps it resident.
        let owner = std::thread::spawn(move || {
            let blocks: Vec<Box<[u8]>> = (0..BLOCKS).map(|i| vec![i as u8; 1024].into()).collect();
            let freer = std::thread::spawn(move || drop(blocks));
            freer.join().expect("freer");
            let before = resident();
            release_free_memory();
            let after = resident();
            let kept = vec![7u8; 1024];
            (before, after, kept)
        });
        let (before, after, kept) = owner.join().expect("owner");
        assert!(
            before.saturating_sub(after) >= 32 << 20,
            "resident {} MiB before the trim, {} MiB after",
            before >> 20,
            after >> 20
        );
        assert!(kept.iter().all(|&b| b == 7), "the heap still works");
    }
}
