//! A real `chat-tui --plain` process and a real server in-process, for the end-to-end tests
//! of the line mode.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use chat_server::{Config, RunningServer, Server};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub running: RunningServer,
}

pub async fn start_server() -> TestServer {
    start_server_with(|_| {}).await
}

/// A server whose configuration `tweak` adjusts.
pub async fn start_server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        ..Config::default()
    };
    tweak(&mut config);
    let running = Server::bind(config).await.expect("bind").spawn();
    TestServer {
        addr: running.addr(),
        running,
    }
}

impl TestServer {
    pub async fn stop(self) {
        let _ = tokio::time::timeout(WAIT, self.running.shutdown()).await;
    }
}

/// A `chat-tui --plain` process with its stdout read line by line on a thread.
pub struct Plain {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Plain {
    /// A line client of the plain protocol (the test servers have no certificate).
    pub fn spawn(addr: SocketAddr, args: &[&str]) -> Plain {
        let mut all = vec!["--plaintext"];
        all.extend_from_slice(args);
        Plain::spawn_with(addr, &all, Path::new("/nonexistent/chat-tui-tests"))
    }

    /// A line client with `args`, its configuration folder in `config_home`.
    pub fn spawn_with(addr: SocketAddr, args: &[&str], config_home: &Path) -> Plain {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
            .arg("--plain")
            .arg("--utc")
            .args(["--server", &addr.to_string()])
            .args(args)
            .env_remove("CHAT_NICK")
            .env_remove("CHAT_TUI_CONFIG")
            .env_remove("CHAT_TRUST_FINGERPRINT")
            // No configuration file from the environment the tests run in.
            .env("XDG_CONFIG_HOME", config_home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat-tui");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Plain {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to chat-tui");
        stdin.flush().expect("flush");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for an output line containing `needle`; returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {needle:?}; output so far: {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended before {needle:?}; output: {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits for the process to exit; returns its status code and stderr.
    pub fn finish(mut self) -> (i32, String) {
        self.stdin = None;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                // Collect the rest of the output for assertions.
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return (status.code().unwrap_or(-1), err);
            }
            assert!(
                Instant::now() < deadline,
                "chat-tui did not exit; output: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
