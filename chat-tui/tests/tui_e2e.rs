//! The full-screen client end to end: a real server and real `chat-tui` processes in
//! pseudo-terminals, driven by keystrokes, their screens read back through a terminal emulator.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chat_server::{Config, RunningServer, Server};
use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

const WAIT: Duration = Duration::from_secs(15);

async fn start_server() -> RunningServer {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        ..Config::default()
    };
    Server::bind(config).await.expect("bind").spawn()
}

/// What a client's terminal has received so far.
#[derive(Default)]
struct Screen {
    parser: Option<vt100::Parser>,
    raw: Vec<u8>,
    closed: bool,
}

/// A `chat-tui` process in an 80×24 pseudo-terminal.
struct Tui {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    _config_home: Option<tempfile::TempDir>,
}

impl Tui {
    fn spawn(addr: SocketAddr, nick: &str) -> Tui {
        let addr = addr.to_string();
        Tui::spawn_with(&["--nick", nick, "--server", &addr, "--utc"], &[], None)
    }

    /// `chat-tui` with `args`, the environment variables `env`, and `config` as its
    /// configuration file (none if `None`), speaking the plain protocol (the test servers
    /// have no certificate).
    fn spawn_with(args: &[&str], env: &[(&str, &str)], config: Option<&str>) -> Tui {
        let mut all = vec!["--plaintext"];
        all.extend_from_slice(args);
        let config_home = tempfile::tempdir().expect("tempdir");
        let mut tui = Tui::spawn_in(&all, env, config, config_home.path());
        tui._config_home = Some(config_home);
        tui
    }

    /// `chat-tui` with `args` and `env`, its configuration folder `config_home` (holding
    /// `config` as its configuration file, if given).
    fn spawn_in(
        args: &[&str],
        env: &[(&str, &str)],
        config: Option<&str>,
        config_home: &std::path::Path,
    ) -> Tui {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pseudo-terminal");
        if let Some(config) = config {
            let dir = config_home.join("chat-suite");
            std::fs::create_dir_all(&dir).expect("config dir");
            std::fs::write(dir.join("chat-tui.toml"), config).expect("config file");
        }
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_chat-tui"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("XDG_CONFIG_HOME", config_home);
        for var in [
            "NO_COLOR",
            "CHAT_TUI_CONFIG",
            "CHAT_NICK",
            "CHAT_SERVER",
            "CHAT_PASSWORD",
            "CHAT_TRUST_FINGERPRINT",
        ] {
            cmd.env_remove(var);
        }
        for (var, value) in env {
            cmd.env(var, value);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn chat-tui");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let screen = Arc::new((
            Mutex::new(Screen {
                parser: Some(vt100::Parser::new(
                    std::num::NonZeroU16::new(24).expect("rows"),
                    std::num::NonZeroU16::new(80).expect("cols"),
                    0,
                )),
                ..Screen::default()
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&screen);
        std::thread::spawn(move || {
            // Keeps the master side open for as long as the reader runs.
            let _master = pair.master;
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*shared;
                let mut s = lock.lock().expect("lock");
                if n == 0 {
                    s.closed = true;
                    cv.notify_all();
                    break;
                }
                s.raw.extend_from_slice(&buf[..n]);
                if let Some(p) = s.parser.as_mut() {
                    p.process(&buf[..n]);
                }
                cv.notify_all();
            }
        });
        Tui {
            child,
            writer,
            screen,
            _config_home: None,
        }
    }

    fn keys(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("type");
        self.writer.flush().expect("flush");
    }

    /// Types `text` and presses Enter.
    fn line(&mut self, text: &str) {
        self.keys(text.as_bytes());
        self.keys(b"\r");
    }

    /// Waits until the screen satisfies `ok`; returns the screen's text.
    fn wait_for(&self, what: &str, ok: impl Fn(&vt100::Screen) -> bool) -> String {
        let (lock, cv) = &*self.screen;
        let deadline = Instant::now() + WAIT;
        let mut s = lock.lock().expect("lock");
        loop {
            let screen = s.parser.as_ref().expect("parser").screen();
            if ok(screen) {
                return screen.contents();
            }
            let now = Instant::now();
            if now >= deadline || s.closed {
                panic!("{what}: not seen; the screen shows:\n{}", screen.contents());
            }
            s = cv.wait_timeout(s, deadline - now).expect("lock").0;
        }
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait_for(text, |s| s.contents().contains(text))
    }

    fn row(&self, row: u16) -> String {
        let (lock, _) = &*self.screen;
        let s = lock.lock().expect("lock");
        let screen = s.parser.as_ref().expect("parser").screen();
        screen.rows(0, 80).nth(usize::from(row)).unwrap_or_default()
    }

    /// Waits for the process to exit; returns whether it succeeded.
    fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "chat-tui did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn raw(&self) -> Vec<u8> {
        let (lock, cv) = &*self.screen;
        // The last bytes may still be in flight when the process exits.
        let deadline = Instant::now() + WAIT;
        let mut s = lock.lock().expect("lock");
        while !s.closed && Instant::now() < deadline {
            s = cv
                .wait_timeout(s, Duration::from_millis(100))
                .expect("lock")
                .0;
        }
        s.raw.clone()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_publicly_and_privately_and_ctrl_c_restores_the_terminal() {
    let server = start_server().await;
    let addr = server.addr();
    tokio::task::spawn_blocking(move || {
        let mut alice = Tui::spawn(addr, "alice");
        alice.wait_text("connected to");
        let mut bob = Tui::spawn(addr, "bob");
        bob.wait_text("connected to");
        alice.wait_text("bob joined");

        // A public message.
        alice.line("hello from alice");
        bob.wait_text("<alice> hello from alice");

        // Bob opens a private tab from the roster (Shift-Tab, Down to alice, Enter)...
        bob.keys(b"\x1b[Z");
        bob.wait_text("roster: Enter opens a tab");
        bob.keys(b"\r");
        bob.wait_for("bob's private tab", |s| {
            s.contents()
                .lines()
                .next()
                .unwrap_or("")
                .contains("2:alice")
        });
        bob.line("a secret for alice");
        bob.wait_text("<bob> a secret for alice");

        // ...and alice gets a new tab with an unread count, without losing the lobby.
        alice.wait_text("2:bob (1)");
        let status = alice.row(22);
        assert!(
            status.contains("│ lobby"),
            "alice stays in the lobby: {status}"
        );
        // Alt-2 shows the private message and clears the count.
        alice.keys(b"\x1b2");
        alice.wait_text("<bob> a secret for alice");
        alice.wait_for("count cleared", |s| !s.contents().contains("2:bob (1)"));

        // Ctrl-C quits cleanly: the other side sees the quit, the terminal is restored.
        alice.keys(b"\x03");
        assert!(alice.wait_exit(), "exit status 0");
        bob.wait_text("alice left (quit)");
        let raw = alice.raw();
        for (what, seq) in [
            ("alternate screen left", &b"\x1b[?1049l"[..]),
            ("mouse capture off", b"\x1b[?1000l"),
            ("bracketed paste off", b"\x1b[?2004l"),
            ("cursor shown", b"\x1b[?25h"),
        ] {
            assert!(contains(&raw, seq), "{what}");
        }
        bob.keys(b"\x03");
        assert!(bob.wait_exit());
    })
    .await
    .expect("clients");
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnects_by_itself_after_the_server_restarts() {
    let server = start_server().await;
    let addr = server.addr();
    let tui = tokio::task::spawn_blocking(move || {
        let tui = Tui::spawn(addr, "alice");
        tui.wait_text("connected to");
        tui
    })
    .await
    .expect("client");
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
    let mut tui = tokio::task::spawn_blocking(move || {
        tui.wait_text("reconnecting in");
        tui
    })
    .await
    .expect("client");
    tui.line("typed while the server was down");
    let tui = tokio::task::spawn_blocking(move || {
        tui.wait_text("pending <alice> typed while the server was down");
        tui
    })
    .await
    .expect("client");

    // The same address again, as after a restart.
    let config = Config {
        listen: vec![addr],
        log_file: None,
        stats_interval: None,
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind again").spawn();
    let mut tui = tokio::task::spawn_blocking(move || {
        tui.wait_text("reconnected to");
        tui.wait_text("<alice> typed while the server was down");
        tui
    })
    .await
    .expect("client");
    tui.keys(b"\x03");
    assert!(
        tokio::task::spawn_blocking(move || tui.wait_exit())
            .await
            .expect("exit")
    );
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nickname_from_the_environment_or_the_configuration_file_connects_at_once() {
    let server = start_server().await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        // The nickname in the configuration file, the server from the environment.
        let mut carol = Tui::spawn_with(
            &["--utc"],
            &[("CHAT_SERVER", &addr)],
            Some("nick = \"carol\"\n"),
        );
        carol.wait_text("connected to");
        // The nickname from the environment, the server from the configuration file.
        let config = format!("server = \"{addr}\"\n");
        let mut dave = Tui::spawn_with(&["--utc"], &[("CHAT_NICK", "dave")], Some(&config));
        dave.wait_text("connected to");
        carol.wait_text("dave joined");
        // Nothing given: the form asks.
        let mut erin = Tui::spawn_with(&["--utc", "--server", &addr], &[], None);
        erin.wait_text("chat-tui — connect");
        for tui in [&mut carol, &mut dave, &mut erin] {
            tui.keys(b"\x03");
            assert!(tui.wait_exit(), "exit status 0");
        }
    })
    .await
    .expect("clients");
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_is_shown_and_asked_about_once_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        ..Config::default()
    };
    chat_testing::with_tls(dir.path())(&mut config);
    let server = Server::bind(config).await.expect("bind").spawn();
    let fingerprint = server.tls().expect("tls").fingerprint();
    let addr = server.addr().to_string();
    let home = dir.path().join("home");
    tokio::task::spawn_blocking(move || {
        let args = ["--nick", "alice", "--server", &addr, "--utc"];
        // First use: the fingerprint, and a question.
        let mut alice = Tui::spawn_in(&args, &[], None, &home);
        let screen = alice.wait_for("the question with the fingerprint", |s| {
            s.contents().contains("trust this server?") && s.contents().contains(&fingerprint)
        });
        assert!(screen.contains(&fingerprint), "{screen}");
        alice.keys(b"y");
        alice.wait_text("connected to");
        let known = home.join("chat-suite/known_servers");
        let kept = std::fs::read_to_string(&known).expect("known_servers");
        assert!(kept.contains(&format!("{addr} {fingerprint}")), "{kept}");
        alice.keys(b"\x03");
        assert!(alice.wait_exit(), "exit status 0");

        // Known now: no question.
        let mut alice = Tui::spawn_in(&args, &[], None, &home);
        let screen = alice.wait_text("connected to");
        assert!(!screen.contains("trust this server?"), "{screen}");
        alice.keys(b"\x03");
        assert!(alice.wait_exit(), "exit status 0");

        // The certificate accepted before is not this one: refused, both shown, with the
        // command that forgets the old one.
        let old = "SHA256:0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld";
        std::fs::write(&known, format!("{addr} {old}\n")).expect("write");
        let mut alice = Tui::spawn_in(&args, &[], None, &home);
        // The whole dialog, to its last line (a screen read mid-frame has only its start).
        let forget = format!("chat-tui --forget-server {addr}");
        let screen = alice.wait_for("the whole refusal", |s| {
            s.contents().contains("certificate refused") && s.contents().contains(&forget)
        });
        assert!(screen.contains("CHANGED"), "{screen}");
        assert!(
            screen.contains(old) && screen.contains(&fingerprint),
            "{screen}"
        );
        assert!(
            screen.contains(&format!("chat-tui --forget-server {addr}")),
            "{screen}"
        );
        // Nothing the user can press accepts it.
        alice.keys(b"y");
        alice.keys(b"\r");
        let screen = alice.wait_for("the refusal closed", |s| {
            !s.contents().contains("certificate refused")
        });
        assert!(!screen.contains("connected to"), "{screen}");
        assert_eq!(
            std::fs::read_to_string(&known).expect("known"),
            format!("{addr} {old}\n")
        );
        alice.keys(b"\x03");
        assert!(alice.wait_exit(), "exit status 0");
    })
    .await
    .expect("client");
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}
