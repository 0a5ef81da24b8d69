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
