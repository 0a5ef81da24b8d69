//! `chat-tui`: the chat suite's terminal client.

use std::process::ExitCode;

use clap::Parser;

use chat_tui::line::{self, LineOptions};

/// chat-tui: terminal client for the chat suite.
///
/// This build provides the line mode (--plain): one line per event on standard output,
/// messages and commands read from standard input. Type /help for the commands.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// Line mode for scripts, bots and dumb terminals.
    #[arg(long)]
    plain: bool,

    /// Nickname (asked for on standard input when not given).
    #[arg(long, short, env = "CHAT_NICK")]
    nick: Option<String>,

    /// Server (or relay) address, host:port.
    #[arg(long, short, env = "CHAT_SERVER", default_value = "127.0.0.1:12345")]
    server: String,

    /// With --plain: print one JSON object per event instead of text.
    #[arg(long)]
    json: bool,

    /// Show times in UTC instead of local time.
    #[arg(long)]
    utc: bool,
}

const EXIT_CODES: &str = "Exit status: 0 quit (/quit, end of input, Ctrl-C); 1 error; 2 bad usage; \
3 server unreachable; 4 refused by the server (e.g. nickname rejected); 5 disconnected by the \
server or connection lost.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.plain {
        eprintln!(
            "chat-tui: the full-screen interface is not part of this build yet; \
             run `chat-tui --plain` for the line mode"
        );
        return ExitCode::from(line::exit::USAGE);
    }
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
    let code = runtime.block_on(line::run(LineOptions {
        server: cli.server,
        nick: cli.nick,
        json: cli.json,
        utc: cli.utc,
    }));
    ExitCode::from(code)
}
