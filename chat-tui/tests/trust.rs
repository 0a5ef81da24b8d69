//! The line mode and a server's certificate, end to end: real `chat-tui --plain` processes
//! against a real server speaking TLS with a certificate of its own. A first connection is
//! refused with the fingerprint unless the user vouches for it; a fingerprint given, or
//! trusted on first use, connects (and the latter is remembered); a changed certificate is
//! refused with both fingerprints and the command that forgets the old one, which works.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use chat_testing::*;

const UNTRUSTED: i32 = 7;

/// `chat-tui --plain` against `server`, with `args`, its configuration folder in `home`,
/// `input` on its standard input; its output once it exits.
fn line_client(server: &TestServer, home: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
        .args(["--plain", "--server", &server.addr.to_string()])
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("CHAT_TRUST_FINGERPRINT")
        .env_remove("CHAT_TUI_CONFIG")
        .env_remove("CHAT_NICK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat-tui");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write");
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn tls_server(dir: &Path) -> TestServer {
    TestServer::start_with(with_tls(dir)).await
}

/// Runs `f` on a blocking thread (the client processes are waited for).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_is_refused_with_the_fingerprint_unless_the_user_vouches_for_it() {
    let dir = tempfile::tempdir().expect("dir");
    let server = std::sync::Arc::new(tls_server(dir.path()).await);
    let fingerprint = server.fingerprint();
    let home = dir.path().join("home");
    let mut watcher = server.client("watcher").await;

    let (s, h) = (server.clone(), home.clone());
    let out = blocking(move || line_client(&s, &h, &["--nick", "alice"], "hello\n")).await;
    assert_eq!(out.status.code(), Some(UNTRUSTED), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&fingerprint),
        "the fingerprint is shown: {said}"
    );
    assert!(said.contains("--trust-fingerprint"), "{said}");
    assert!(
        !home.join("chat-suite/known_servers").exists(),
        "nothing remembered"
    );

    // The wrong fingerprint given: refused, both shown.
    let (s, h) = (server.clone(), home.clone());
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = blocking(move || {
        line_client(
            &s,
            &h,
            &["--nick", "alice", "--trust-fingerprint", wrong],
            "hi\n",
        )
    })
    .await;
    assert_eq!(out.status.code(), Some(UNTRUSTED), "{}", stderr(&out));
    assert!(stderr(&out).contains(wrong) && stderr(&out).contains(&fingerprint));

    // The right one: connected over TLS, the message delivered; nothing written down.
    let (s, h, f) = (server.clone(), home.clone(), fingerprint.clone());
    let out = blocking(move || {
        line_client(
            &s,
            &h,
            &["--nick", "alice", "--trust-fingerprint", &f],
            "over tls\n",
        )
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    expect_text(&mut watcher, "over tls").await;
    assert!(!home.join("chat-suite/known_servers").exists());

    // Trusted on first use: connected, and remembered for the next time.
    let (s, h) = (server.clone(), home.clone());
    let out = blocking(move || {
        line_client(
            &s,
            &h,
            &["--nick", "bob", "--trust-on-first-use"],
            "first use\n",
        )
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    expect_text(&mut watcher, "first use").await;
    let known = std::fs::read_to_string(home.join("chat-suite/known_servers")).expect("known");
    assert!(
        known.contains(&format!("{} {fingerprint}", server.addr)),
        "one line per host:port: {known}"
    );
    let (s, h) = (server.clone(), home.clone());
    let out = blocking(move || line_client(&s, &h, &["--nick", "bob"], "known now\n")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    expect_text(&mut watcher, "known now").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_is_refused_with_both_fingerprints_until_the_old_is_forgotten() {
    let dir = tempfile::tempdir().expect("dir");
    let server = std::sync::Arc::new(tls_server(dir.path()).await);
    let fingerprint = server.fingerprint();
    let home = dir.path().join("home");
    let old = "SHA256:0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld";
    let server_name = server.addr.to_string();
    std::fs::create_dir_all(home.join("chat-suite")).expect("dir");
    std::fs::write(
        home.join("chat-suite/known_servers"),
        format!("{server_name} {old}\n"),
    )
    .expect("known_servers");

    // Even with --trust-on-first-use: this is not a first use.
    let (s, h) = (server.clone(), home.clone());
    let out =
        blocking(move || line_client(&s, &h, &["--nick", "carol", "--trust-on-first-use"], ""))
            .await;
    assert_eq!(out.status.code(), Some(UNTRUSTED), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("CHANGED"), "{said}");
    assert!(said.contains(old) && said.contains(&fingerprint), "{said}");
    let forget = format!("chat-tui --forget-server {server_name}");
    assert!(said.contains(&forget), "the command is given: {said}");

    // The command named forgets it; the next first use is trusted again.
    let out = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
        .args(["--forget-server", &server_name])
        .env("XDG_CONFIG_HOME", &home)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (s, h) = (server.clone(), home.clone());
    let out =
        blocking(move || line_client(&s, &h, &["--nick", "carol", "--trust-on-first-use"], ""))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Forgetting what is not known says so.
    let out = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
        .args(["--forget-server", "nowhere.example:1"])
        .env("XDG_CONFIG_HOME", &home)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nowhere.example:1 is not in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_server_without_tls_fails_clearly_and_plaintext_connects() {
    let dir = tempfile::tempdir().expect("dir");
    // A server with no certificate: plain only, as before TLS.
    let server = std::sync::Arc::new(TestServer::start().await);
    let home = dir.path().join("home");
    let (s, h) = (server.clone(), home.clone());
    let out = blocking(move || line_client(&s, &h, &["--nick", "dan"], "")).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
    let (s, h) = (server.clone(), home.clone());
    let out = blocking(move || line_client(&s, &h, &["--nick", "dan", "--plaintext"], "")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
