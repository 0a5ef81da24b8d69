//! The relay's configuration file, through `chat-relay config`.

use std::process::Command;

#[test]
fn the_relay_reads_its_file_below_flags_and_environment() {
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join("relay.toml");
    std::fs::write(
        &file,
        "server = \"chat.example.org:12345\"\nmax-clients = 5\nport = 4000\n\
         relay-secret = \"correct-horse-battery-staple\"\n",
    )
    .expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-relay"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CHAT_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["--port", "4001", "config"])
        .env("CHAT_RELAY_CONFIG", &file)
        .env("CHAT_RELAY_MAX_CLIENTS", "6")
        .env("HOME", home.path())
        .output()
        .expect("run chat-relay");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} =")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    assert!(line("server").contains("chat.example.org:12345"), "{text}");
    assert!(line("server").ends_with("# configuration file"), "{text}");
    assert!(line("max-clients").contains("\"6\""), "{text}");
    assert!(line("port").contains("\"4001\""), "{text}");
    assert!(line("relay-secret").contains("(redacted)"), "{text}");
    assert!(!text.contains("correct-horse"), "{text}");

    std::fs::write(&file, "sever = \"x\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-relay"))
        .args(["--config", file.to_str().expect("utf-8"), "config"])
        .env("HOME", home.path())
        .output()
        .expect("run chat-relay");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("relay.toml:1: unknown setting `sever`"),
        "{said}"
    );
}

#[test]
fn the_relay_prints_completions_and_its_man_page() {
    let bin = env!("CARGO_BIN_EXE_chat-relay");
    let out = Command::new(bin)
        .args(["completions", "fish"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("server-fingerprint"));
    let out = Command::new(bin).arg("man").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH chat-relay 1"));
}

#[test]
fn sighup_reopens_the_relays_log_and_does_not_stop_it() {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().expect("home");
    let log = home.path().join("relay.jsonl");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_chat-relay"))
        .env("CHAT_RELAY_CONFIG", "/dev/null")
        .env("CHAT_RELAY_SECRET", "a-relay-secret-of-more-than-32-bytes")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("RUST_LOG")
        .args(["--port", "0", "--stats-interval", "0", "--log-file"])
        .arg(&log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn chat-relay");
    let mut lines = BufReader::new(relay.stderr.take().expect("stderr")).lines();
    let mut wait_for = |needle: &str| {
        lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}"))
    };
    wait_for("connection log:");
    let status = Command::new("kill")
        .args(["-HUP", &relay.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for("SIGHUP: the connection log is opened again");
    assert!(
        relay.try_wait().expect("status").is_none(),
        "the relay runs on"
    );
    let _ = relay.kill();
    let _ = relay.wait();
}
