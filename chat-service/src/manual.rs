//! Shell completions and man pages, made from a command line's own definition, so that they
//! never disagree with `--help`.

use std::io::{self, Write};

use clap::CommandFactory;
pub use clap_complete::Shell;

use crate::config_file::Loaded;

/// The subcommands a service answers by printing and exiting, shared by the server and the
/// relay (flattened into their own subcommands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Print {
    /// Prints the effective configuration (flags, environment, configuration file and
    /// defaults, each with where it came from; secrets redacted) as a configuration file, and
    /// exits.
    Config,
    /// Prints the completion script for a shell, and exits (e.g. `completions bash >
    /// /etc/bash_completion.d/NAME`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },
    /// Prints the man page (roff), and exits (e.g. `man > /usr/local/share/man/man1/NAME.1`).
    Man,
}

impl Print {
    /// Prints it for the command line (and configuration file) `loaded`; the exit status to
    /// end with.
    pub fn show<P: CommandFactory>(self, loaded: &Loaded<P>) -> std::process::ExitCode {
        match self {
            Print::Config => write_out::<P>(loaded.describe().as_bytes()),
            Print::Completions { shell } => print::<P>(Some(shell)),
            Print::Man => print::<P>(None),
        }
    }
}

/// Prints the completion script for `shell` (`Some`) or the man page (`None`) of `P`'s command
/// line on standard output; the exit status to end with. A reader that stops early (`| head`)
/// is no error.
pub fn print<P: CommandFactory>(shell: Option<Shell>) -> std::process::ExitCode {
    let mut page = Vec::new();
    let rendered = match shell {
        Some(shell) => {
            completions::<P>(shell, &mut page);
            Ok(())
        }
        None => man_page::<P>(&mut page),
    };
    match rendered {
        Ok(()) => write_out::<P>(&page),
        Err(e) => {
            eprintln!("{}: {e}", P::command().get_name());
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes `text` on standard output for `P`'s command (`chat-server config`, ...); the exit
/// status to end with. A reader that stops early (`| head`) is no error.
pub fn write_out<P: CommandFactory>(text: &[u8]) -> std::process::ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("{}: {e}", P::command().get_name());
            std::process::ExitCode::FAILURE
        }
        _ => std::process::ExitCode::SUCCESS,
    }
}

/// Writes the completion script of `P`'s command line for `shell`.
pub fn completions<P: CommandFactory>(shell: Shell, out: &mut dyn Write) {
    let mut cmd = P::command();
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes the man page (roff, section 1) of `P`'s command line.
pub fn man_page<P: CommandFactory>(out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(P::command()).render(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small command line.
    #[derive(clap::Parser)]
    #[command(name = "svc", version, about = "A service.")]
    struct Svc {
        /// The port.
        #[arg(long)]
        port: u16,
    }

    #[test]
    fn completions_and_the_man_page_name_the_flags() {
        let mut bash = Vec::new();
        completions::<Svc>(Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).expect("utf-8");
        assert!(bash.contains("--port"), "{bash}");
        assert!(bash.contains("complete -F"), "{bash}");
        let mut man = Vec::new();
        man_page::<Svc>(&mut man).expect("render");
        let man = String::from_utf8(man).expect("utf-8");
        assert!(man.starts_with(".ie \\n(.g .ds Aq"), "{man}");
        assert!(man.contains(".TH svc 1"), "{man}");
        assert!(man.contains("The port"), "{man}");
    }
}
