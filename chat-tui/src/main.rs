//! `chat-tui`: the chat suite's terminal client.

use std::path::PathBuf;
use std::process::ExitCode;

use chat_core::protocol::Password;
use clap::Parser;

use chat_tui::line::{self, LineOptions};
use chat_tui::tui::config;
use chat_tui::tui::config::Options;
use chat_tui::tui::run::{self, TuiOptions};

/// chat-tui: terminal client for the chat suite.
///
/// Full-screen by default: tabs for the lobby and private conversations, a roster, and the
/// keyboard for everything (F1 lists the keys). With a nickname (--nick, CHAT_NICK or the
/// configuration file) it connects at once; otherwise, or when the server refuses, it asks,
/// prefilled from the flags and the configuration file.
///
/// --plain is the line mode for scripts, bots and dumb terminals: one line per event on
/// standard output, messages and commands read from standard input (/help lists them).
#[derive(Debug, Parser)]
#[command(version, about, long_about, after_help = AFTER_HELP)]
struct Cli {
    /// Line mode for scripts, bots and dumb terminals.
    #[arg(long)]
    plain: bool,

    /// Nickname.
    #[arg(long, short, env = "CHAT_NICK")]
    nick: Option<String>,

    /// Account password: logs in to the account registered under the nickname (register one
    /// with /register). Prefer the environment variable: command lines are visible to other
    /// users.
    #[arg(long, env = "CHAT_PASSWORD", hide_env_values = true)]
    password: Option<Password>,

    /// Server (or relay) address, host:port [default: 127.0.0.1:12345].
    #[arg(long, short, env = "CHAT_SERVER")]
    server: Option<String>,

    /// With --plain: print one JSON object per event instead of text.
    #[arg(long)]
    json: bool,

    /// Show times in UTC instead of local time.
    #[arg(long)]
    utc: bool,

    /// Lines of history kept per tab [default: 10000].
    #[arg(long, value_name = "LINES", value_parser = clap::value_parser!(u32).range(100..))]
    scrollback: Option<u32>,

    /// Configuration file [default: ~/.config/chat-suite/chat-tui.toml on Linux].
    #[arg(long, env = "CHAT_TUI_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Configuration file (TOML; flags take precedence):
  nick = \"alice\"
  server = \"chat.example.org:12345\"
  scrollback = 10000
  utc = false
  roster = true

Colours are off when NO_COLOR is set.

Exit status: 0 quit (/quit, Ctrl-C, end of input in --plain); 1 error; 2 bad usage;
with --plain also 3 server unreachable, 4 refused by the server (e.g. nickname rejected),
5 disconnected by the server or connection lost, 6 some messages could not be delivered
(named on stderr).";

const DEFAULT_SERVER: &str = "127.0.0.1:12345";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, explicit) = match &cli.config {
        Some(p) => (Some(p.clone()), true),
        None => (config::default_path(), false),
    };
    let file = match path.as_deref().map(|p| config::load(p, explicit)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("chat-tui: configuration: {e}");
            return ExitCode::from(line::exit::USAGE);
        }
        None => config::FileConfig::default(),
    };
    let nick = cli.nick.or(file.nick);
    let server = cli
        .server
        .or(file.server)
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let utc = cli.utc || file.utc.unwrap_or(false);

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-tui: cannot start: {e}");
            return ExitCode::from(line::exit::ERROR);
        }
    };
    let code = if cli.plain {
        runtime.block_on(line::run(LineOptions {
            server,
            nick,
            password: cli.password,
            json: cli.json,
            utc,
        }))
    } else {
        let defaults = Options::default();
        let app = Options {
            utc,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            scrollback: cli
                .scrollback
                .map(|n| n as usize)
                .or(file.scrollback)
                .unwrap_or(defaults.scrollback)
                .max(100),
            roster: file.roster.unwrap_or(defaults.roster),
        };
        runtime.block_on(run::run(TuiOptions {
            nick,
            password: cli.password,
            server,
            app,
        }))
    };
    // The terminal reader thread may still be blocked in a read: do not wait for it.
    runtime.shutdown_background();
    ExitCode::from(code)
}
