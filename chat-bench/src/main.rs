//! `chat-bench`: the load generator. See `chat-bench --help` and docs/performance.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_bench::{Options, Protocol, Transport, append_report, run};
use clap::Parser;

/// chat-bench: N subscribers and P publishers in the lobby of a chat server (or relay), or
/// on one channel of a Redis server (--protocol redis) for comparison.
///
/// Prints one JSON object: messages sent, deliveries expected and received, lost, reordered,
/// deliveries/s, latency percentiles (send → receipt), connect time, and with --server-pid the
/// server's CPU time per delivery and memory. A chat server must not rate-limit the
/// publishers: start it with --rate-burst 1000000 --rate-per-sec 1000000.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Server, relay or Redis address.
    #[arg(long, default_value = "127.0.0.1:12345")]
    server: String,
    /// What the server speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Chat)]
    protocol: Protocol,
    /// Speak TLS to the server (a chat server's port, or Redis started with --tls-port).
    #[arg(long)]
    tls: bool,
    /// With --tls: trust the certificate with this fingerprint (`chat-server fingerprint`
    /// prints a chat server's); without it only certificates that chain to the web's roots.
    #[arg(long, value_name = "SHA256:…", requires = "tls")]
    trust_fingerprint: Option<String>,
    /// Subscribers.
    #[arg(short = 'n', default_value_t = 100)]
    subscribers: usize,
    /// Publishers.
    #[arg(short = 'p', default_value_t = 1)]
    publishers: usize,
    /// Payload size in bytes.
    #[arg(short = 's', default_value_t = 64)]
    size: usize,
    /// Messages per publisher.
    #[arg(short = 'm', default_value_t = 10_000, conflicts_with = "duration")]
    messages: u64,
    /// Publish for this many seconds instead of a message count.
    #[arg(long)]
    duration: Option<u64>,
    /// Open loop at this many messages per second in all (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: messages in flight per publisher.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Also connect this many subscribers that never read their socket (their cost to the
    /// others is the measurement).
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Print a progress line (JSON, on stderr and to --out) every this many seconds.
    #[arg(long, value_name = "SECS")]
    progress: Option<u64>,
    /// The server's process id, for its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Instead of messages: open this many connections that only log in, and report the
    /// server's memory per connection (needs --server-pid).
    #[arg(long, value_name = "C")]
    idle: Option<usize>,
    /// With --idle: keep the connections open this long after measuring (for looking at the
    /// server with a heap profiler meanwhile); a line on stderr says when it starts.
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "idle")]
    hold: u64,
    /// During the run, also pass files of this many megabytes (10^6 bytes) from one extra
    /// client to another through the server, one after the other, and report their
    /// throughput ("file" in the report). Start the server with --file-rate 0.
    #[arg(long, value_name = "MB")]
    file_mb: Option<u64>,
    /// Also append the report (and progress lines) to this file (JSON Lines).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let transport = if cli.tls {
        match Transport::tls(cli.trust_fingerprint.clone()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("chat-bench: TLS: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Transport::plain()
    };
    let opts = Options {
        server: cli.server,
        protocol: cli.protocol,
        transport,
        subscribers: cli.subscribers,
        publishers: cli.publishers.max(1),
        size: cli.size,
        messages: cli.messages,
        duration: cli.duration.map(Duration::from_secs),
        rate: cli.rate,
        window: cli.window.max(1),
        stalled: cli.stalled,
        server_pid: cli.server_pid,
        drain: Duration::from_secs(10),
        progress: cli.progress.filter(|&s| s > 0).map(Duration::from_secs),
        out: cli.out.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-bench: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(count) = cli.idle {
        let Some(pid) = cli.server_pid else {
            eprintln!("chat-bench: --idle needs --server-pid");
            return ExitCode::from(2);
        };
        return match runtime.block_on(chat_bench::idle(
            opts.protocol,
            &opts.transport,
            &opts.server,
            count,
            pid,
            Duration::from_secs(cli.hold),
        )) {
            Ok(report) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chat-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let completed = chat_bench::file::Completed::default();
    // The transfers run on a thread and runtime of their own: on the generator's runtime,
    // behind a thousand subscribers' tasks, each of their round trips would wait for the
    // generator, and the figure would measure it rather than the server.
    let (stop_files, stopped) = tokio::sync::oneshot::channel::<()>();
    let files = cli.file_mb.map(|mb| {
        let task =
            chat_bench::file::transfers(opts.server.clone(), mb * 1_000_000, completed.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                tokio::select! {
                    done = task => done,
                    _ = stopped => Ok(()),
                }
            })
        })
    });
    let result = runtime.block_on(run(opts));
    let _ = stop_files.send(());
    if let Some(Ok(Err(e))) = files.map(std::thread::JoinHandle::join) {
        eprintln!("chat-bench: file transfers: {e}");
        return ExitCode::FAILURE;
    }
    let result = result.map(|mut report| {
        if cli.file_mb.is_some() {
            report.file = Some(chat_bench::file::report(&completed));
        }
        report
    });
    match result {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            if let Some(path) = cli.out
                && let Err(e) = append_report(&path, &report)
            {
                eprintln!("chat-bench: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
