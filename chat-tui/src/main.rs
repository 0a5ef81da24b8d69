//! `chat-tui`: the chat suite's terminal client.

use std::path::PathBuf;
use std::process::ExitCode;

use chat_core::protocol::Password;
use chat_core::tls::KnownServers;
use clap::Parser;

use chat_tui::line::{self, LineOptions};
use chat_tui::trust::{self, Trust};
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
    /// What to print instead of chatting.
    #[command(subcommand)]
    command: Option<Print>,

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

    /// The line mode (--plain), printing one JSON object per event instead of text.
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

    /// Connect without TLS: only for an older server on this machine (servers refuse plain
    /// connections from elsewhere, and anyone on the way could read them).
    #[arg(long, conflicts_with_all = ["trust_fingerprint", "trust_on_first_use"])]
    plaintext: bool,

    /// Trust the server's certificate if it has this fingerprint (as `chat-server fingerprint`
    /// prints it), whatever known_servers says. For scripts and the line mode.
    #[arg(long, env = "CHAT_TRUST_FINGERPRINT", value_name = "SHA256:…")]
    trust_fingerprint: Option<String>,

    /// With --plain: trust a server never seen before without asking, and remember its
    /// certificate in known_servers (a changed certificate is still refused).
    #[arg(long)]
    trust_on_first_use: bool,

    /// Where received files are saved [default: the download folder, e.g. ~/Downloads].
    #[arg(long, env = "CHAT_DOWNLOAD_DIR", value_name = "PATH")]
    download_dir: Option<PathBuf>,

    /// With --plain: accept file offers from these nicknames without asking (a bot that
    /// receives files), e.g. --accept-files-from alice,bob.
    #[arg(long, value_name = "NICK,...", value_delimiter = ',')]
    accept_files_from: Vec<String>,

    /// Forget the certificate accepted for HOST:PORT (after the server got a new one), then
    /// exit: the next connection shows the new one and asks.
    #[arg(long, value_name = "HOST:PORT", exclusive = true)]
    forget_server: Option<String>,
}

/// What `chat-tui` prints instead of chatting.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
enum Print {
    /// Prints the completion script for a shell, and exits (`chat-tui completions bash >
    /// ~/.local/share/bash-completion/completions/chat-tui`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Prints the man page (roff), and exits (`chat-tui man > ~/.local/share/man/man1/chat-tui.1`).
    Man,
}

impl Print {
    /// Prints it on standard output; a reader that stops early (`| head`) is no error.
    fn print(self) -> ExitCode {
        use clap::CommandFactory;
        use std::io::Write;
        let mut cmd = Cli::command();
        let mut page = Vec::new();
        let rendered = match self {
            Print::Completions { shell } => {
                clap_complete::generate(shell, &mut cmd, "chat-tui", &mut page);
                Ok(())
            }
            Print::Man => clap_mangen::Man::new(cmd).render(&mut page),
        };
        let mut out = std::io::stdout().lock();
        match rendered.and_then(|()| out.write_all(&page).and_then(|()| out.flush())) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("chat-tui: {e}");
                ExitCode::from(line::exit::ERROR)
            }
            _ => ExitCode::SUCCESS,
        }
    }
}

const AFTER_HELP: &str = "\
Configuration file (TOML; flags take precedence):
  nick = \"alice\"
  server = \"chat.example.org:12345\"
  scrollback = 10000
  utc = false
  download_dir = \"~/Downloads\"
  roster = true

Colours are off when NO_COLOR is set.

Connections use TLS. A certificate that chains to the web's roots is trusted as a browser
would trust it; any other (a server's own, made at its first start) is shown with its
fingerprint and trusted once you say so, then kept in known_servers next to the
configuration file, one line per host:port. A certificate that changed is refused.

Exit status: 0 quit (/quit, Ctrl-C, end of input in --plain); 1 error; 2 bad usage;
with --plain also 3 server unreachable, 4 refused by the server (e.g. nickname rejected),
5 disconnected by the server or connection lost, 6 some messages could not be delivered
(named on stderr), 7 the server's certificate is not trusted (seen for the first time
without --trust-fingerprint or --trust-on-first-use, or changed).";

const DEFAULT_SERVER: &str = "127.0.0.1:12345";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(print) = cli.command {
        return print.print();
    }
    let known = trust::default_known_servers().map(KnownServers::at);
    if let Some(server) = &cli.forget_server {
        return match trust::forget(known.as_ref(), server) {
            Ok(said) => {
                println!("chat-tui: {said}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("chat-tui: {why}");
                ExitCode::from(line::exit::ERROR)
            }
        };
    }
    let mut trust = Trust::new(known);
    trust.plaintext = cli.plaintext;
    trust.given = cli.trust_fingerprint;
    trust.first_use = cli.trust_on_first_use;
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
    let download_dir = cli
        .download_dir
        .clone()
        .or(file.download_dir.clone())
        .map(|p| p.to_str().map_or(p.clone(), chat_tui::command::expand_home))
        .unwrap_or_else(chat_tui::files::default_download_dir);

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
    let code = if cli.plain || cli.json {
        runtime.block_on(line::run(LineOptions {
            server,
            nick,
            password: cli.password,
            json: cli.json,
            utc,
            trust,
            ignore_file: chat_tui::ignore::default_path(),
            download_dir,
            accept_files_from: cli.accept_files_from,
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
            ignore_file: chat_tui::ignore::default_path(),
        };
        runtime.block_on(run::run(TuiOptions {
            nick,
            password: cli.password,
            server,
            app,
            trust,
            download_dir,
        }))
    };
    // The terminal reader thread may still be blocked in a read: do not wait for it.
    runtime.shutdown_background();
    ExitCode::from(code)
}
