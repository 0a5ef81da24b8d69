//! The server's console, on the real binary: plain text when standard error is not a terminal,
//! one clear line when a port is taken, and a monitor link that stays the same across restarts
//! (the token kept in the data folder).

use chat_testing::process::Console;

/// The binary with `args`, its data folder under `home`.
fn start(home: &std::path::Path, args: &[&str]) -> Console {
    Console::start(env!("CARGO_BIN_EXE_chat-server"), home, args)
}

const FREE_PORTS: [&str; 6] = ["--port", "0", "--http-port", "0", "--ws-port", "0"];

#[test]
fn the_console_has_no_colour_codes_when_it_is_not_a_terminal() {
    let home = tempfile::tempdir().expect("tmp");
    let server = start(home.path(), &FREE_PORTS);
    let lines = server.until("monitor: open");
    for line in &lines {
        assert!(!line.contains('\x1b'), "an escape code in {line:?}");
    }
}

#[test]
fn the_monitor_link_survives_a_restart_and_its_token_file_is_private() {
    let home = tempfile::tempdir().expect("tmp");
    let link = |server: &Console| {
        let lines = server.until("monitor: open");
        let last = lines.last().expect("a line").clone();
        last.split("monitor: open ")
            .nth(1)
            .expect("the link")
            .trim()
            .to_owned()
    };
    let first = start(home.path(), &FREE_PORTS);
    let before = link(&first);
    drop(first);
    let second = start(home.path(), &FREE_PORTS);
    let after = link(&second);
    let token = |url: &str| url.split("?token=").nth(1).expect("a token").to_owned();
    assert_eq!(token(&before), token(&after), "{before} then {after}");

    let file = home.path().join("data/chat-suite/monitor-token");
    let kept = std::fs::read_to_string(&file).expect("the token file");
    assert_eq!(kept.trim(), token(&after));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    // Given on the command line, the token is that one, and the file stays as it was.
    let third = start(
        home.path(),
        &[
            &FREE_PORTS[..],
            &["--monitor-token", "given-on-the-command-line"],
        ]
        .concat(),
    );
    assert!(link(&third).ends_with("?token=given-on-the-command-line"));
    assert_eq!(std::fs::read_to_string(&file).expect("file"), kept);
}

#[test]
fn a_port_in_use_is_reported_once_with_the_flag_that_changes_it() {
    let home = tempfile::tempdir().expect("tmp");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let mut server = start(
        home.path(),
        &["--port", "0", "--http-port", &port, "--ws-port", "0"],
    );
    let text = server.to_end().join("\n");
    assert_eq!(text.matches("in use").count(), 1, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("--http-port sets this port"), "{text}");
    assert!(text.contains("--http-port 0 picks a free one"), "{text}");
    let status = server.wait();
    assert_ne!(status, Some(0), "the server does not start: {status:?}");
}

/// Sends SIGHUP to process `pid`.
fn hang_up(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Alice, logged in to the server at `addr` over plain TCP from loopback.
async fn alice_at(addr: &str) -> chat_core::client::TcpClient {
    let options = chat_core::client::ConnectOptions::new("alice");
    chat_core::client::connect(addr, &options)
        .await
        .expect("alice")
}

/// `client` says `text` in the lobby, and it reaches the message log at `log`.
async fn logged(client: &mut chat_core::client::TcpClient, log: &std::path::Path, text: &str) {
    client.sender.say("lobby", text).await.expect("say");
    tokio::task::block_in_place(|| file_gets(log, text));
}

/// Waits (at most 20 s) until the file at `path` contains `text`.
fn file_gets(path: &std::path::Path, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never got {text:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sighup_the_message_log_goes_on_in_a_new_file_as_logrotate_expects() {
    let home = tempfile::tempdir().expect("tmp");
    let log = home.path().join("messages.jsonl");
    let server = Console::start_with_log(
        env!("CARGO_BIN_EXE_chat-server"),
        home.path(),
        &log,
        &[
            "--port",
            "0",
            "--no-monitor",
            "--plaintext-from",
            "loopback",
        ],
    );
    let addr = tokio::task::block_in_place(|| server.after("listening on "));
    let mut alice = alice_at(&addr).await;
    logged(&mut alice, &log, "before the rotation").await;

    // logrotate without copytruncate: rename, then SIGHUP.
    let rotated = home.path().join("messages.jsonl.1");
    std::fs::rename(&log, &rotated).expect("rename");
    hang_up(server.pid());
    tokio::task::block_in_place(|| server.until("SIGHUP: the message log is opened again"));
    logged(&mut alice, &log, "after the rotation").await;
    let old = std::fs::read_to_string(&rotated).expect("rotated");
    assert!(old.contains("before the rotation"), "{old}");
    assert!(!old.contains("after the rotation"), "{old}");
    let new = std::fs::read_to_string(&log).expect("new");
    assert!(!new.contains("before the rotation"), "{new}");
}

#[test]
fn with_log_format_json_every_console_line_is_a_json_object() {
    let home = tempfile::tempdir().expect("tmp");
    let server = start(
        home.path(),
        &["--port", "0", "--no-monitor", "--log-format", "json"],
    );
    let lines = server.until("monitor: off");
    let mut listening = false;
    for line in &lines {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(record["timestamp"].is_string(), "{line}");
        assert!(record["level"].is_string(), "{line}");
        let message = record["message"].as_str().expect("message");
        listening |= record["level"] == "INFO" && message.contains("listening on 127.0.0.1:");
    }
    assert!(listening, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_that_went_away_loses_its_lines_and_nothing_else() {
    use std::io::BufRead;
    let home = tempfile::tempdir().expect("tmp");
    let log = home.path().join("messages.jsonl");
    /// Killed when dropped, a failed assertion included.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        // No configuration file of this machine's.
        .env("CHAT_SERVER_CONFIG", "/dev/null")
        .args([
            "--port",
            "0",
            "--no-monitor",
            "--stats-interval",
            "0",
            "--db",
            ":memory:",
        ])
        .arg("--log-file")
        .arg(&log)
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let child = Killed(child);
    let addr = tokio::task::block_in_place(|| {
        let mut lines = std::io::BufReader::new(stderr).lines();
        let line = lines
            .find_map(|l| l.ok().filter(|l| l.contains("listening on ")))
            .expect("listening");
        // The reading end closes here, as when the terminal or the pipe's reader is gone:
        // every console line from now on fails to be written.
        line.split("listening on ")
            .nth(1)
            .expect("addr")
            .trim()
            .to_owned()
    });
    let mut alice = alice_at(&addr).await;
    logged(&mut alice, &log, "still logged").await;
    // SIGHUP logs to the console too, and the log's writer reports the reopening there.
    std::fs::rename(&log, home.path().join("messages.jsonl.1")).expect("rename");
    hang_up(child.0.id());
    // The signal is handled asynchronously: log in (a `join` record) until one lands in the
    // new file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 0;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"join\"")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing reached the new file"
        );
        n += 1;
        let probe = chat_core::client::ConnectOptions::new(format!("probe{n}"));
        drop(
            chat_core::client::connect(&addr, &probe)
                .await
                .expect("probe"),
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    logged(&mut alice, &log, "after the signal").await;
    drop(child);
}
