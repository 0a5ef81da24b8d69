//! The configuration file on the real binary: where it is found, what wins over it, the errors
//! it gives, and `chat-server config`.

use std::path::Path;
use std::process::{Command, Output};

use chat_testing::process::Console;

const BIN: &str = env!("CARGO_BIN_EXE_chat-server");

/// `chat-server ARGS` with `home` as its home, the environment `env` and no other `CHAT_*`
/// variable.
fn run(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("CHAT_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .envs(env.iter().copied())
        .output()
        .expect("run chat-server")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The line of `chat-server config`'s output setting `name`.
fn setting<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{name} =")))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let home = tempfile::tempdir().expect("home");
    // The user's configuration folder is where the file is looked for first.
    let folder = home.path().join("config/chat-suite");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(
        folder.join("chat-server.toml"),
        "# chat-server's settings\nport = 4000\nmax-clients = 77\nhistory = 20\n\
         listen = [\"0.0.0.0\", \"::\"]\nrelay_secret = \"correct-horse-battery-staple\"\n\
         no-monitor = true\n",
    )
    .expect("write");
    let out = run(
        home.path(),
        &[("CHAT_MAX_CLIENTS", "88")],
        &["--history", "30", "config"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("chat-suite/chat-server.toml"), "{text}");
    let port = setting(&text, "port");
    assert!(
        port.contains("\"4000\"") && port.ends_with("# configuration file"),
        "{port}"
    );
    let clients = setting(&text, "max-clients");
    assert!(
        clients.contains("\"88\"") && clients.ends_with("# environment"),
        "{clients}"
    );
    let history = setting(&text, "history");
    assert!(
        history.contains("\"30\"") && history.ends_with("# command line"),
        "{history}"
    );
    let burst = setting(&text, "rate-burst");
    assert!(
        burst.contains("\"10\"") && burst.ends_with("# default"),
        "{burst}"
    );
    let listen = setting(&text, "listen");
    assert!(listen.contains("[\"0.0.0.0\", \"::\"]"), "{listen}");
    assert!(setting(&text, "no-monitor").contains("true"), "{text}");
    // Secrets are never printed.
    assert!(!text.contains("correct-horse"), "{text}");
    assert!(
        setting(&text, "relay-secret").contains("(redacted)"),
        "{text}"
    );

    // --config (or CHAT_SERVER_CONFIG) names another file, which replaces the default one.
    let other = home.path().join("other.toml");
    std::fs::write(&other, "port = 5000\n").expect("write");
    let other = other.to_str().expect("utf-8");
    for (env, args) in [
        (vec![], vec!["--config", other, "config"]),
        (vec![("CHAT_SERVER_CONFIG", other)], vec!["config"]),
    ] {
        let out = run(home.path(), &env, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(setting(&text, "port").contains("\"5000\""), "{text}");
        assert!(setting(&text, "history").ends_with("# default"), "{text}");
    }
}

#[test]
fn a_wrong_setting_names_the_file_the_line_and_the_key() {
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join("server.toml");
    let path = file.to_str().expect("utf-8");
    for (text, said) in [
        (
            "port = 4000\n\nmax_cleints = 3\n",
            format!("{path}:3: unknown setting `max_cleints`"),
        ),
        ("# ports\nport = 99999\n", format!("{path}:2: `port`:")),
        (
            "no-monitor = \"yes\"\n",
            format!("{path}:1: `no-monitor` is a switch"),
        ),
        (
            "port = [1, 2]\n",
            format!("{path}:1: `port` takes one value"),
        ),
        ("port = \n", format!("{path}:1:")),
    ] {
        std::fs::write(&file, text).expect("write");
        let out = run(home.path(), &[], &["--config", path, "config"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(stderr(&out).contains(&said), "{text}: {}", stderr(&out));
    }
    let out = run(
        home.path(),
        &[],
        &["--config", "/nonexistent/chat-server.toml"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the configuration file /nonexistent/chat-server.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_server_runs_with_the_settings_of_its_file() {
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join("chat-server.toml");
    std::fs::write(&file, "port = 0\nno-monitor = true\nhistory = 7\n").expect("write");
    let server = Console::start(
        BIN,
        home.path(),
        &["--config", file.to_str().expect("utf-8")],
    );
    let lines = server.until("monitor: off");
    assert!(
        lines.iter().any(|l| l.contains("listening on 127.0.0.1:")),
        "{lines:?}"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    let home = tempfile::tempdir().expect("home");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(home.path(), &[], &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        // fish writes `-l metrics-token`, the others `--metrics-token`.
        for flag in ["metrics-token", "config", "plaintext-from"] {
            assert!(script.contains(flag), "{shell} completes {flag}");
        }
    }
    let out = run(home.path(), &[], &["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH chat-server 1"), "{page}");
    assert!(page.contains("\\-\\-relay\\-secret\\-file"), "{page}");
    assert!(page.contains("CHAT_MAX_CLIENTS"), "{page}");
}

#[test]
fn what_the_command_line_or_the_environment_sets_wins_over_a_conflicting_or_incomplete_file() {
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join("chat-server.toml");
    let path = file.to_str().expect("utf-8");
    std::fs::write(
        &file,
        "log-file = \"/srv/chat/messages.jsonl\"\ntls-key = \"/srv/chat/key.pem\"\n\
         relay-secret-file = \"/srv/chat/relay-secret\"\n",
    )
    .expect("write");
    let secret = "an-environment-secret-of-more-than-32-bytes";
    let out = run(
        home.path(),
        &[("CHAT_RELAY_SECRET", secret)],
        &[
            "--config",
            path,
            "--no-log-file",
            "--tls-cert",
            "/srv/chat/cert.pem",
            "config",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // --no-log-file beats the file's log-file, which it conflicts with.
    assert!(setting(&text, "no-log-file").contains("true"), "{text}");
    assert!(text.contains("# log-file ="), "{text}");
    // --tls-cert needs --tls-key: the file gives it.
    assert!(
        setting(&text, "tls-cert").ends_with("# command line"),
        "{text}"
    );
    assert!(
        setting(&text, "tls-key").ends_with("# configuration file"),
        "{text}"
    );
    // The secret from the environment beats the file's secret file.
    assert!(
        setting(&text, "relay-secret").ends_with("# environment"),
        "{text}"
    );
    assert!(text.contains("# relay-secret-file ="), "{text}");
    assert!(!text.contains(secret), "{text}");

    // An empty CHAT_SERVER_CONFIG is a usage error that names the flag, as any empty value.
    let out = run(home.path(), &[("CHAT_SERVER_CONFIG", "")], &["config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}
