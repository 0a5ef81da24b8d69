//! The line client end to end: real `chat-tui --plain` processes against a real server.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use chat_core::client::{ConnectOptions, connect};
use chat_core::frame::{decode_payload, encode_frame};
use chat_core::protocol::{ClientFrame, ServerFrame};

#[path = "support/plain.rs"]
mod plain;
use plain::{Plain, TestServer, WAIT, start_server, start_server_with};

/// A client of the test's own, to see what arrives.
async fn watcher(server: &TestServer) -> chat_core::client::TcpClient {
    connect(&server.addr.to_string(), &ConnectOptions::new("watcher"))
        .await
        .expect("connect")
}

/// The texts of the next `n` chat messages `client` receives, in order.
async fn texts(client: &mut chat_core::client::TcpClient, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    let got = tokio::time::timeout(WAIT, async {
        while texts.len() < n {
            match client.events.next().await {
                Ok(Some(ServerFrame::Message(m))) => texts.push(m.body.text().to_owned()),
                Ok(Some(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    assert!(got.is_ok(), "only {texts:?} arrived");
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_and_send_private_messages() {
    let server = start_server().await;
    let mut alice = Plain::spawn(server.addr, &["--nick", "alice"]);
    alice.expect("connected to");
    alice.expect("1 online: alice");
    let mut bob = Plain::spawn(server.addr, &["--nick", "bob"]);
    bob.expect("2 online: alice, bob");
    alice.expect("* bob joined");
    let mut carol = Plain::spawn(server.addr, &["--nick", "carol"]);
    carol.expect("3 online");

    alice.type_line("hello bob");
    let line = bob.expect("<alice> hello bob");
    assert!(
        line.len() > 9 && line.as_bytes()[2] == b':' && line.as_bytes()[5] == b':',
        "starts with HH:MM:SS: {line}"
    );
    alice.expect("<alice> hello bob");

    alice.type_line("/msg bob psst");
    bob.expect("[PM alice → you] psst");
    alice.expect("[PM you → bob] psst");

    bob.type_line("/me waves");
    alice.expect("* bob waves");

    // Carol saw the public messages but not the private one.
    alice.type_line("after the secret");
    carol.expect("<alice> after the secret");
    assert!(carol.seen.iter().any(|l| l.contains("<alice> hello bob")));
    assert!(
        !carol.seen.iter().any(|l| l.contains("psst")),
        "{:#?}",
        carol.seen
    );

    bob.type_line("/who");
    bob.expect("3 online in lobby: alice, bob, carol");

    bob.type_line("/msg nobody hello?");
    bob.expect("! not online: nobody");

    alice.type_line("/quit see you");
    alice.expect("you left (see you)");
    let (code, _) = alice.finish();
    assert_eq!(code, 0, "quit exits with 0");
    bob.expect("* alice left (see you)");

    // End of input is a clean quit too.
    carol.close_stdin();
    let (code, _) = carol.finish();
    assert_eq!(code, 0);
    bob.expect("* carol left");
    drop(bob);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_input_is_sent_before_the_client_leaves() {
    let server = start_server().await;
    let mut watcher = watcher(&server).await;
    let mut bot = Plain::spawn(server.addr, &["--nick", "bot"]);
    bot.type_line("first line");
    bot.type_line("second line");
    bot.close_stdin();
    let (code, _) = bot.finish();
    assert_eq!(code, 0);
    assert_eq!(texts(&mut watcher, 2).await, ["first line", "second line"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nickname_is_asked_for_when_not_given() {
    let server = start_server().await;
    let mut c = Plain::spawn(server.addr, &[]);
    c.type_line("prompted");
    c.expect("connected to");
    c.expect("1 online: prompted");
    c.type_line("/quit");
    assert_eq!(c.finish().0, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_one_object_per_event() {
    let server = start_server().await;
    let mut c = Plain::spawn(server.addr, &["--nick", "jay", "--json"]);
    let welcome: serde_json::Value = serde_json::from_str(&c.expect("\"welcome\"")).expect("json");
    assert_eq!(welcome["nick"], "jay");
    c.type_line("structured");
    let msg: serde_json::Value = serde_json::from_str(&c.expect("structured")).expect("json");
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["from"], "jay");
    assert_eq!(msg["room"], "lobby");
    assert_eq!(msg["own"], true);
    assert!(msg["id"].as_u64().is_some());
    assert!(msg["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    c.type_line("/quit");
    assert_eq!(c.finish().0, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_clear_error() {
    // No other test uses 127.0.0.3, so the freed port stays free.
    let unused = std::net::TcpListener::bind("127.0.0.3:0").expect("bind");
    let addr = unused.local_addr().expect("addr");
    drop(unused);
    let c = Plain::spawn(addr, &["--nick", "lonely"]);
    let (code, err) = c.finish();
    assert_eq!(code, 3);
    assert!(
        err.contains("cannot connect") && err.contains("connection refused"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_nickname_is_a_clear_error() {
    let server = start_server().await;
    let (code, err) = Plain::spawn(server.addr, &["--nick", "*sneaky"]).finish();
    assert_eq!(code, 4);
    assert!(err.contains("reserved for guests"), "{err}");
    let (code, err) = Plain::spawn(server.addr, &["--nick", "two words"]).finish();
    assert_eq!(code, 4);
    assert!(err.contains("whitespace"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_is_reported_and_exits_non_zero() {
    let server = start_server().await;
    let mut c = Plain::spawn(server.addr, &["--nick", "stayer"]);
    c.expect("connected to");
    server.stop().await;
    c.expect("disconnected (server shutting down)");
    let (code, _) = c.finish();
    assert_eq!(code, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_line_is_refused_locally_and_the_client_stays() {
    let server = start_server().await;
    let mut c = Plain::spawn(server.addr, &["--nick", "paster"]);
    c.expect("connected to");
    c.type_line(&"x".repeat(70_000));
    c.expect("! message not sent: it is 70000 bytes long; the limit is 4096");
    c.type_line("short enough");
    c.expect("<paster> short enough");
    c.type_line("/quit");
    let (code, err) = c.finish();
    assert_eq!(code, 6, "a line was not delivered");
    assert!(err.contains("line 1: xxxx"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_piped_line_is_delivered_in_order_through_the_rate_limit() {
    // Five messages back to back, then a mute of a second: fifteen lines go over it twice.
    let server = start_server_with(|c| {
        c.rate.burst = 5;
        c.rate.per_sec = 5.0;
        c.rate.mute = Duration::from_secs(1);
    })
    .await;
    let mut watcher = watcher(&server).await;
    let mut bot = Plain::spawn(server.addr, &["--nick", "bot"]);
    let lines: Vec<String> = (1..=15).map(|i| format!("l{i}")).collect();
    for line in &lines {
        bot.type_line(line);
    }
    bot.close_stdin();
    assert_eq!(texts(&mut watcher, 15).await, lines);
    bot.expect("rate limited: sending it again in");
    let (code, err) = bot.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_that_cannot_be_delivered_are_named_and_set_the_exit_status() {
    let server = start_server().await;
    let mut watcher = watcher(&server).await;
    let mut bot = Plain::spawn(server.addr, &["--nick", "bot"]);
    bot.type_line("before");
    bot.type_line("/msg nobody are you there?");
    bot.type_line("after");
    bot.close_stdin();
    assert_eq!(texts(&mut watcher, 2).await, ["before", "after"]);
    let (code, err) = bot.finish();
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("1 line(s) not delivered")
            && err.contains("line 2: /msg nobody are you there? (not online: nobody)"),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_leaves_cleanly() {
    let server = start_server().await;
    let mut watcher = Plain::spawn(server.addr, &["--nick", "watcher"]);
    watcher.expect("connected to");
    let mut c = Plain::spawn(server.addr, &["--nick", "interrupted"]);
    c.expect("connected to");
    watcher.expect("* interrupted joined");
    let status = Command::new("kill")
        .args(["-INT", &c.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    c.expect("* you left");
    assert_eq!(c.finish().0, 0, "Ctrl-C is a quit");
    watcher.expect("* interrupted left");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_that_is_not_utf8_is_sent_with_replacement_characters() {
    let server = start_server().await;
    let mut c = Plain::spawn(server.addr, &["--nick", "latin1"]);
    c.expect("connected to");
    let stdin = c.stdin.as_mut().expect("stdin");
    stdin.write_all(b"caf\xe9 au lait\n").expect("write");
    stdin.flush().expect("flush");
    c.expect("<latin1> caf\u{FFFD} au lait");
    c.type_line("still reading input");
    c.expect("<latin1> still reading input");
    c.type_line("/quit");
    assert_eq!(c.finish().0, 0);
    server.stop().await;
}

#[test]
fn without_plain_the_user_is_told_what_to_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_alone_is_the_line_mode() {
    let server = start_server().await;
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
            .args(["--json", "--plaintext", "--nick", "jo", "--server"])
            .arg(server.addr.to_string())
            .env("XDG_CONFIG_HOME", "/nonexistent/chat-tui-tests")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"/quit\n").expect("write");
        drop(stdin);
        (child.wait_with_output().expect("run"), server)
    })
    .await
    .expect("join");
    let (out, server) = out;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout);
    let welcome: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("a line")).expect("json");
    assert_eq!(welcome["type"], "welcome");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_history_and_accounts_from_the_line_client() {
    let server = start_server().await;
    let mut alice = Plain::spawn(server.addr, &["--nick", "alice"]);
    alice.expect("connected to");
    alice.type_line("/register hunter22");
    alice.expect("alice is now registered");
    alice.type_line("/join #rust");
    alice.expect("you joined #rust");
    // Plain text goes to the room joined last.
    alice.type_line("first in rust");
    alice.expect("#rust <alice> first in rust");
    alice.type_line("second in rust");
    alice.expect("#rust <alice> second in rust");
    alice.type_line("/topic all things rust");
    alice.expect("alice set the topic of #rust: all things rust");
    alice.type_line("/room lobby");
    alice.expect("talking in #lobby");
    alice.type_line("back in the lobby");
    alice.expect("<alice> back in the lobby");

    // Bob joins later: the room's history is replayed, marked, with /history for more.
    let mut bob = Plain::spawn(server.addr, &["--nick", "bob"]);
    bob.expect("connected to");
    bob.type_line("/rooms");
    bob.expect("#rust (1): all things rust");
    bob.type_line("/join rust");
    bob.expect("you joined #rust; topic: all things rust");
    bob.expect("(earlier) #rust <alice> first in rust");
    bob.expect("(earlier) #rust <alice> second in rust");
    bob.expect("2 earlier messages of #rust; nothing older");
    bob.type_line("/who");
    bob.expect("2 online in rust: alice, bob");
    bob.type_line("/part");
    bob.expect("you left #rust");
    bob.expect("talking in #lobby");

    // A private message to alice while she is away waits for her login.
    alice.type_line("/quit");
    let (code, _) = alice.finish();
    assert_eq!(code, 0);
    bob.type_line("/msg alice welcome back");
    bob.expect("alice offline: the message is kept for when they log in");
    bob.type_line("alice will love this");
    bob.expect("<bob> alice will love this");

    // Wrong password: refused, exit status 4.
    let wrong = Plain::spawn(server.addr, &["--nick", "alice", "--password", "nope"]);
    let (code, err) = wrong.finish();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("wrong password"), "{err}");

    let mut alice = Plain::spawn(server.addr, &["--nick", "alice", "--password", "hunter22"]);
    alice.expect("connected to");
    // Her room comes back, and the message kept for her arrives with its original time.
    alice.expect("you joined #rust");
    alice.expect("(earlier) [PM bob → you] welcome back");
    // What mentioned her since her last login (her registration).
    alice.type_line("/mentions");
    alice.expect("1 message mentioned you since your last login");
    alice.expect("#lobby <bob> alice will love this");
    // Her private conversation with bob, from the store.
    alice.type_line("/history bob");
    alice.expect("(earlier) [PM bob → you] welcome back");
    alice.expect("1 earlier message with bob; nothing older");
    bob.type_line("/quit");
    bob.finish();
    alice.type_line("/quit");
    alice.finish();
    server.stop().await;
}

/// A server that speaks protocol version 1 only: it answers the handshake, then keeps every
/// frame it gets (echoing messages) until the client quits or leaves.
fn version_1_server() -> (SocketAddr, std::thread::JoinHandle<Vec<ClientFrame>>) {
    use std::io::Read;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut read = move || -> Option<(ClientFrame, std::net::TcpStream)> {
            let mut len = [0u8; 4];
            sock.read_exact(&mut len).ok()?;
            let mut payload = vec![0; u32::from_be_bytes(len) as usize];
            sock.read_exact(&mut payload).ok()?;
            let frame = decode_payload(&payload).expect("a frame the server can decode");
            Some((frame, sock.try_clone().expect("clone")))
        };
        let Some((ClientFrame::Hello(hello), mut sock)) = read() else {
            panic!("no Hello");
        };
        let mut welcome = support::welcome(&hello.nick, &[]);
        welcome.version = 1;
        let bytes = encode_frame(&ServerFrame::Welcome(welcome), 65536).expect("encode");
        sock.write_all(&bytes).expect("write");
        let mut frames = Vec::new();
        while let Some((frame, mut sock)) = read() {
            let quit = matches!(frame, ClientFrame::Quit { .. });
            // A message is confirmed by its echo, as every server does.
            if let ClientFrame::Send(out) = &frame {
                let echo = ServerFrame::Message(chat_core::protocol::ChatMessage {
                    id: out.tag,
                    at: chrono::Utc::now(),
                    from: hello.nick.clone(),
                    to: out.to.clone(),
                    body: out.body.clone(),
                    attrs: Vec::new(),
                    tag: Some(out.tag),
                });
                let bytes = encode_frame(&echo, 65536).expect("encode");
                sock.write_all(&bytes).expect("write");
            }
            frames.push(frame);
            if quit {
                break;
            }
        }
        frames
    });
    (addr, server)
}

#[test]
fn a_version_1_server_gets_no_request_it_cannot_decode() {
    let (addr, server) = version_1_server();
    let mut c = Plain::spawn(addr, &["--nick", "olduser"]);
    c.expect("connected to");
    c.expect(&format!(
        "! the server speaks protocol version 1 (this client: {})",
        chat_core::protocol::PROTOCOL_VERSION
    ));
    c.type_line("/join #rust");
    c.expect("! not sent: that command needs protocol version 2, and the server speaks version 1");
    c.type_line("/register s3cret");
    c.expect("needs protocol version 2");
    c.type_line("still here");
    c.type_line("/quit");
    let (code, _) = c.finish();
    assert_eq!(code, 0);
    let frames = server.join().expect("server thread");
    let texts: Vec<_> = frames
        .iter()
        .filter(|f| !matches!(f, ClientFrame::Ping { .. }))
        .map(|f| match f {
            ClientFrame::Send(out) => format!("send {:?}", out.body),
            ClientFrame::Quit { .. } => "quit".to_owned(),
            other => panic!("a version 1 server got {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["send Text(\"still here\")", "quit"]);
}

#[test]
fn chat_tui_prints_completions_and_its_man_page() {
    let bin = env!("CARGO_BIN_EXE_chat-tui");
    let out = std::process::Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("--trust-fingerprint") && script.contains("--plain"));
    let out = std::process::Command::new(bin)
        .arg("man")
        .output()
        .expect("run");
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH chat-tui 1"), "{page}");
    assert!(
        page.contains("Exit status"),
        "the help's epilogue is in the page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_hides_messages_and_survives_a_restart() {
    let server = start_server().await;
    let home = tempfile::tempdir().expect("tempdir");
    let mut alice = Plain::spawn_with(
        server.addr,
        &["--plaintext", "--nick", "alice"],
        home.path(),
    );
    alice.expect("connected to");
    let mut bob = Plain::spawn(server.addr, &["--nick", "bob"]);
    alice.expect("* bob joined");
    alice.type_line("/ignore bob");
    alice.expect("* you ignore bob");
    bob.type_line("buy cheap watches");
    bob.type_line("/msg alice psst, watches");
    bob.type_line("/nick bobby");
    alice.expect("* bob is now bobby");
    // A message alice sees afterwards is proof the ignored ones came (and were hidden) before.
    let mut carol = Plain::spawn(server.addr, &["--nick", "carol"]);
    carol.type_line("carol here");
    alice.expect("<carol> carol here");
    assert!(
        !alice.seen.iter().any(|l| l.contains("watches")),
        "{:#?}",
        alice.seen
    );
    alice.type_line("/quit");
    assert_eq!(alice.finish().0, 0);
    let kept = std::fs::read_to_string(home.path().join("chat-suite").join("ignored"))
        .expect("the list is kept");
    assert!(kept.lines().any(|l| l == "bob"), "{kept}");

    // Started again, alice still ignores bob (who is bob again), until she says otherwise.
    bob.type_line("/nick bob");
    let mut alice = Plain::spawn_with(
        server.addr,
        &["--plaintext", "--nick", "alice"],
        home.path(),
    );
    alice.expect("connected to");
    alice.type_line("/ignore");
    alice.expect("* you ignore bob");
    bob.type_line("still selling watches");
    carol.type_line("carol again");
    alice.expect("<carol> carol again");
    assert!(!alice.seen.iter().any(|l| l.contains("watches")));
    alice.type_line("/unignore bob");
    alice.expect("* you ignore nobody");
    bob.type_line("fine, no watches");
    alice.expect("<bob> fine, no watches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_commands_and_their_json_events() {
    let server = start_server().await;
    let mut carol = Plain::spawn(server.addr, &["--nick", "carol", "--json"]);
    carol.expect("\"type\":\"welcome\"");
    let mut bob = Plain::spawn(server.addr, &["--nick", "bob"]);
    carol.type_line("/join #den");
    carol.expect("\"type\":\"ops\"");
    bob.type_line("/join #den");
    bob.expect("operators of #den: carol");
    carol.type_line("/mute bob 10m hush");
    let line = carol.expect("\"type\":\"moderation\"");
    assert!(
        line.contains("\"action\":\"mute\"") && line.contains("\"reason\":\"hush\""),
        "{line}"
    );
    bob.expect("! carol muted bob in #den until");
    bob.type_line("can I talk?");
    bob.expect("! you are muted in #den by carol for");
    bob.type_line("/kick carol");
    bob.expect("! only operators of #den may kick");
    carol.type_line("/whois bob");
    let line = carol.expect("\"type\":\"whois\"");
    assert!(
        line.contains("\"rooms_in_common\":[\"den\",\"lobby\"]"),
        "{line}"
    );
    carol.type_line("/kick bob enough");
    bob.expect("! carol kicked bob from #den (enough)");
    bob.expect("* you left #den");
}
