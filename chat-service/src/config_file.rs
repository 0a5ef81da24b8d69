//! Settings from a TOML file for a clap command line. Every flag can be set in the file under
//! its long name (`max-clients = 2000`, or `max_clients`); a list is an array
//! (`listen = ["0.0.0.0", "::"]`), a switch a boolean (`no-log-file = true`). Precedence: a
//! flag on the command line, then its environment variable, then the file, then the default.
//! A key that is no flag, or a value the flag would refuse, is an error naming the file, the
//! line and the key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, Parser};

/// Flags that never come from the file: what chooses the file, and what only prints.
const NOT_FROM_FILE: [&str; 3] = ["config", "help", "version"];

/// Where a service looks for its file when none is named: `<config dir>/chat-suite/NAME`
/// (`~/.config/chat-suite/` on Linux) for a user, then `/etc/chat-suite/NAME` for the system
/// (a service started by systemd); the first that exists.
pub fn default_path(name: &str) -> Option<PathBuf> {
    let user =
        directories::ProjectDirs::from("", "", "chat-suite").map(|d| d.config_dir().join(name));
    let system = Path::new("/etc/chat-suite").join(name);
    user.into_iter().chain([system]).find(|p| p.is_file())
}

/// Whether `arg` was given on the command line or in the environment (a switch only when on).
fn set_outside(matches: &ArgMatches, arg: &clap::Arg) -> bool {
    let id = arg.get_id().as_str();
    let outside = matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    outside && (!switch || matches.try_get_one::<bool>(id).ok().flatten() == Some(&true))
}

/// A command line with a file's settings added. Its `Debug` shows no values (secrets may be
/// among them).
#[derive(Clone)]
pub struct Merged {
    /// The command line, the file's settings first.
    pub argv: Vec<OsString>,
    /// The flags set by the file (by id), with the key and the line that set them.
    pub from_file: BTreeMap<String, (String, usize)>,
}

/// `argv` with the settings of the file at `path` (its contents `text`) added for every flag
/// that neither the command line nor the environment set. `matches` is `argv` parsed by
/// `cmd`. Values are checked by [`parse_merged`].
pub fn merge(
    cmd: &Command,
    matches: &ArgMatches,
    argv: &[OsString],
    path: &Path,
    text: &str,
) -> Result<Merged, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("{}:{}", path.display(), describe(&e, text)))?;
    let mut extra: Vec<OsString> = Vec::new();
    let mut from_file = BTreeMap::new();
    for (key, value) in &table {
        let line = line_of(text, key);
        let at = || format!("{}:{line}", path.display());
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .filter(|_| !NOT_FROM_FILE.contains(&long.as_str()))
            .ok_or_else(|| {
                format!(
                    "{}: unknown setting `{key}` ({} --help lists the flags; a setting is a \
                     flag's long name)",
                    at(),
                    cmd.get_name()
                )
            })?;
        let id = arg.get_id().as_str();
        // The command line and the environment win: over this flag's setting, and over a
        // setting that conflicts with one of theirs (the file's `log-file` under a
        // `--no-log-file`).
        let overridden = set_outside(matches, arg)
            || cmd.get_arguments().any(|other| {
                set_outside(matches, other)
                    && (cmd
                        .get_arg_conflicts_with(arg)
                        .iter()
                        .any(|c| c.get_id() == other.get_id())
                        || cmd
                            .get_arg_conflicts_with(other)
                            .iter()
                            .any(|c| c.get_id() == arg.get_id()))
            });
        if overridden {
            continue;
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        if switch {
            match value {
                toml::Value::Boolean(true) => {
                    extra.push(format!("--{long}").into());
                    from_file.insert(id.to_owned(), (key.clone(), line));
                }
                toml::Value::Boolean(false) => {}
                _ => return Err(format!("{}: `{key}` is a switch: true or false", at())),
            }
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<_>>(),
            other => scalar(other).map(|v| vec![v]),
        }
        .ok_or_else(|| {
            format!(
                "{}: `{key}` takes a string, a number or a list of them",
                at()
            )
        })?;
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        if values.len() != 1 && !repeatable {
            return Err(format!("{}: `{key}` takes one value, not a list", at()));
        }
        for v in values {
            // `--flag=value`, so that a value starting with `-` stays a value.
            extra.push(format!("--{long}={v}").into());
        }
        from_file.insert(id.to_owned(), (key.clone(), line));
    }
    let mut merged = argv.to_vec();
    // After the program's name, before its own flags and any subcommand.
    let at = merged.len().min(1);
    merged.splice(at..at, extra);
    Ok(Merged {
        argv: merged,
        from_file,
    })
}

/// Parses a merged command line (`path`: the file its settings came from). A value from the
/// file that its flag refuses is an error naming the file, the line and the key; any other
/// error (or `--help`) is clap's own.
pub fn parse_merged(
    cmd: &Command,
    merged: &Merged,
    path: Option<&Path>,
) -> Result<ArgMatches, LoadError> {
    cmd.clone().try_get_matches_from(&merged.argv).map_err(|e| {
        // The flag the error is about, as clap shows it: `--port <PORT>`.
        let flag = e
            .get(clap::error::ContextKind::InvalidArg)
            .and_then(|v| match v {
                clap::error::ContextValue::String(s) => Some(s.clone()),
                _ => None,
            });
        let long = flag
            .as_deref()
            .and_then(|f| f.strip_prefix("--"))
            .map(|f| f.split([' ', '=']).next().unwrap_or(f).to_owned());
        let from_file = long.and_then(|long| {
            let arg = cmd.get_arguments().find(|a| a.get_long() == Some(&long))?;
            merged.from_file.get(arg.get_id().as_str())
        });
        match (from_file, path) {
            (Some((key, line)), Some(path)) => LoadError::File(format!(
                "{}:{line}: `{key}`: {}",
                path.display(),
                first_line(&e.to_string())
            )),
            _ => LoadError::Clap(e),
        }
    })
}

/// A command line parsed together with its configuration file. Its `Debug` shows no values
/// (secrets may be among them).
pub struct Loaded<P> {
    /// The parsed command line, file settings included.
    pub cli: P,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    command: Command,
    matches: ArgMatches,
    from_file: BTreeMap<String, (String, usize)>,
}

/// Why [`load_from`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// The command line itself (or `--help`, `--version`): clap prints and exits.
    Clap(clap::Error),
    /// The configuration file: cannot be read, or a setting in it is wrong.
    File(String),
}

/// Parses the process's command line and the configuration file: the one `--config` (or its
/// environment variable, the argument with id `config`) names, else `NAME` in
/// [`default_path`]'s places, else none. On an error prints it and exits with status 2, as
/// clap does for a bad flag.
pub fn load<P: Parser>(name: &str) -> Loaded<P> {
    match load_from(std::env::args_os().collect(), name) {
        Ok(loaded) => loaded,
        Err(LoadError::Clap(e)) => e.exit(),
        Err(LoadError::File(e)) => {
            eprintln!("{}: {e}", P::command().get_name());
            std::process::exit(2);
        }
    }
}

/// [`load`] on a given command line, returning errors.
pub fn load_from<P: Parser>(argv: Vec<OsString>, name: &str) -> Result<Loaded<P>, LoadError> {
    let command = P::command();
    // Leniently first: what the command line and the environment set, and which file to read.
    // A flag the file completes (`--tls-cert` here, `tls-key` there) is no error yet; the
    // merged command line is checked in full below.
    let matches = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .map_err(LoadError::Clap)?;
    let named = matches
        .try_get_one::<PathBuf>("config")
        .ok()
        .flatten()
        .filter(|p| !p.as_os_str().is_empty())
        .cloned();
    let file = match named {
        Some(path) => Some(path),
        None => default_path(name),
    };
    let merged = match &file {
        None => Merged {
            argv,
            from_file: BTreeMap::new(),
        },
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                LoadError::File(format!(
                    "cannot read the configuration file {}: {e}",
                    path.display()
                ))
            })?;
            merge(&command, &matches, &argv, path, &text).map_err(LoadError::File)?
        }
    };
    let matches = parse_merged(&command, &merged, file.as_deref())?;
    let cli = P::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    Ok(Loaded {
        cli,
        file,
        command,
        matches,
        from_file: merged.from_file,
    })
}

impl std::fmt::Debug for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merged")
            .field("from_file", &self.from_file.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<P> std::fmt::Debug for Loaded<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("file", &self.file)
            .field("from_file", &self.from_file.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<P> Loaded<P> {
    /// The parsed command line, dropping the rest (the raw values, secrets included).
    pub fn into_cli(self) -> P {
        self.cli
    }

    /// The effective settings as a configuration file, each with where it came from; secrets
    /// are replaced by `(redacted)`, unset flags are comments.
    pub fn describe(&self) -> String {
        let mut out = match &self.file {
            Some(path) => format!("# configuration file: {}\n", path.display()),
            None => "# configuration file: none\n".to_owned(),
        };
        for arg in self.command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if NOT_FROM_FILE.contains(&long) {
                continue;
            }
            let id = arg.get_id().as_str();
            let source = self.source(id);
            let secret = arg.is_hide_env_values_set()
                || ["secret", "token"]
                    .iter()
                    .any(|w| id.contains(w) && !id.ends_with("_file"));
            let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
            let line = if switch {
                format!("{long} = {}", self.matches.get_flag(id))
            } else {
                let values: Vec<String> = self
                    .matches
                    .get_raw(id)
                    .map(|v| v.map(|v| toml_string(&v.to_string_lossy())).collect())
                    .unwrap_or_default();
                match values.as_slice() {
                    [] => format!("# {long} ="),
                    _ if secret => format!("{long} = \"(redacted)\""),
                    [one] if !matches!(arg.get_action(), ArgAction::Append) => {
                        format!("{long} = {one}")
                    }
                    many => format!("{long} = [{}]", many.join(", ")),
                }
            };
            out.push_str(&format!("{line:<48} # {source}\n"));
        }
        out
    }

    /// Where the flag with this id got its value: `command line`, `environment`,
    /// `configuration file`, `default` or `unset`.
    pub fn source(&self, id: &str) -> &'static str {
        match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) if self.from_file.contains_key(id) => {
                "configuration file"
            }
            Some(ValueSource::CommandLine) => "command line",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        }
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML value as a flag's text; `None` for a table, a date or a nested list.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The line (from 1) where `key` is set in `text`.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('"');
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches('"').trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// A TOML syntax error as `LINE: what` (or ` what` without a place).
fn describe(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{line}: {}", e.message())
        }
        None => format!(" {}", e.message()),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("svc")
            .arg(
                Arg::new("port")
                    .long("port")
                    .env("SVC_TEST_PORT")
                    .value_parser(clap::value_parser!(u16))
                    .default_value("12345"),
            )
            .arg(Arg::new("listen").long("listen").action(ArgAction::Append))
            .arg(Arg::new("no_log").long("no-log").action(ArgAction::SetTrue))
            .arg(Arg::new("name").long("name"))
    }

    fn run(argv: &[&str], text: &str) -> Result<ArgMatches, String> {
        let cmd = cmd();
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let matches = cmd
            .clone()
            .try_get_matches_from(&argv)
            .map_err(|e| e.to_string())?;
        let path = Path::new("svc.toml");
        let merged = merge(&cmd, &matches, &argv, path, text)?;
        parse_merged(&cmd, &merged, Some(path)).map_err(|e| match e {
            LoadError::File(e) => e,
            LoadError::Clap(e) => e.to_string(),
        })
    }

    #[test]
    fn the_file_fills_in_what_the_command_line_left_out() {
        let text = "port = 4000\nlisten = [\"0.0.0.0\", \"::\"]\nno_log = true\nname = \"x\"\n";
        let m = run(&["svc"], text).expect("merged");
        assert_eq!(m.get_one::<u16>("port"), Some(&4000));
        let listen: Vec<&String> = m.get_many("listen").expect("listen").collect();
        assert_eq!(listen, ["0.0.0.0", "::"]);
        assert!(m.get_flag("no_log"));
        // The command line wins.
        let m = run(&["svc", "--port", "5000", "--name", "y"], text).expect("merged");
        assert_eq!(m.get_one::<u16>("port"), Some(&5000));
        assert_eq!(m.get_one::<String>("name").map(String::as_str), Some("y"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_the_line_and_the_key() {
        let e = run(&["svc"], "port = 4000\n\nmax_cleints = 3\n").expect_err("unknown");
        assert!(
            e.starts_with("svc.toml:3: unknown setting `max_cleints`"),
            "{e}"
        );
        let e = run(&["svc"], "# ports\nport = 99999\n").expect_err("bad value");
        assert!(e.starts_with("svc.toml:2: `port`:"), "{e}");
        assert!(e.contains("99999"), "{e}");
        let e = run(&["svc"], "no-log = \"yes\"\n").expect_err("switch");
        assert!(e.contains("svc.toml:1: `no-log` is a switch"), "{e}");
        let e = run(&["svc"], "port = [1, 2]\n").expect_err("one value");
        assert!(e.contains("takes one value"), "{e}");
        let e = run(&["svc"], "port = \n").expect_err("syntax");
        assert!(e.starts_with("svc.toml:1:"), "{e}");
        let e = run(&["svc"], "help = true\n").expect_err("not a setting");
        assert!(e.contains("unknown setting `help`"), "{e}");
    }

    #[derive(Debug, clap::Parser)]
    #[command(name = "svc")]
    struct Svc {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 12345)]
        port: u16,
        #[arg(long)]
        listen: Vec<String>,
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        no_log: bool,
        #[arg(long)]
        name: Option<String>,
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_effective_settings_read_back_as_a_file_and_hide_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("svc.toml");
        std::fs::write(
            &path,
            "listen = [\"::\", \"0.0.0.0\"]\nsecret = \"hunter2hunter2\"\nno-log = true\n",
        )
        .expect("write");
        let config = path.to_str().expect("utf-8");
        let loaded: Loaded<Svc> =
            load_from(argv(&["svc", "--config", config, "--port", "4000"]), "x").expect("load");
        assert_eq!(loaded.cli.port, 4000);
        assert_eq!(loaded.cli.listen, ["::", "0.0.0.0"]);
        assert_eq!(loaded.cli.secret.as_deref(), Some("hunter2hunter2"));
        assert!(loaded.cli.no_log);
        let text = loaded.describe();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("secret = \"(redacted)\""), "{text}");
        assert!(text.contains("# name ="), "{text}");
        let port = text.lines().find(|l| l.starts_with("port")).expect("port");
        assert!(
            port.contains("\"4000\"") && port.ends_with("# command line"),
            "{port}"
        );
        let listen = text
            .lines()
            .find(|l| l.starts_with("listen"))
            .expect("listen");
        assert!(listen.ends_with("# configuration file"), "{listen}");
        // What it prints is a configuration file giving the same settings.
        let again = dir.path().join("again.toml");
        std::fs::write(&again, text.replace("secret = \"(redacted)\"", "")).expect("write");
        let reloaded: Loaded<Svc> = load_from(
            argv(&["svc", "--config", again.to_str().expect("utf-8")]),
            "x",
        )
        .expect("reload");
        assert_eq!(reloaded.cli.port, 4000);
        assert_eq!(reloaded.cli.listen, ["::", "0.0.0.0"]);
        assert!(reloaded.cli.no_log);
        assert_eq!(reloaded.source("port"), "configuration file");
        assert_eq!(reloaded.source("name"), "unset");
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error() {
        let e = load_from::<Svc>(argv(&["svc", "--config", "/nonexistent/svc.toml"]), "x")
            .expect_err("missing");
        match e {
            LoadError::File(e) => assert!(e.contains("/nonexistent/svc.toml"), "{e}"),
            LoadError::Clap(e) => panic!("{e}"),
        }
    }
}
