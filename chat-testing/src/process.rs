//! A server binary run as a process, its console (standard error) read line by line on a
//! thread: for tests of what only the real binary does (its console, signals, files at start).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// How long a line of the console is waited for.
const LINE_WAIT: Duration = Duration::from_secs(20);

/// A server process, killed when dropped.
#[derive(Debug)]
pub struct Console {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Console {
    /// Starts the binary at `bin` with `args` (after quiet defaults: no periodic stats, no
    /// message log, the database in memory), its data folder under `home`, standard error
    /// piped (not a terminal), and neither `NO_COLOR` nor `RUST_LOG` set.
    pub fn start(bin: &str, home: &Path, args: &[&str]) -> Console {
        Console::spawn(bin, home, &["--no-log-file"], args)
    }

    /// [`Console::start`], with the message log written to `log`.
    pub fn start_with_log(bin: &str, home: &Path, log: &Path, args: &[&str]) -> Console {
        let log = log.to_str().expect("a UTF-8 path");
        Console::spawn(bin, home, &["--log-file", log], args)
    }

    fn spawn(bin: &str, home: &Path, log: &[&str], args: &[&str]) -> Console {
        let mut child = Command::new(bin)
            .args(["--stats-interval", "0", "--db", ":memory:"])
            .args(log)
            .args(args)
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .env_remove("CHAT_MONITOR_TOKEN")
            // No configuration file of this machine's.
            .env("CHAT_SERVER_CONFIG", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Console { child, lines }
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line up to and including the first that contains `needle`.
    pub fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(LINE_WAIT)
                .unwrap_or_else(|e| panic!("no line with {needle:?} ({e}) after {seen:#?}"));
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    /// The first line that contains `needle`, from its end.
    pub fn after(&self, needle: &str) -> String {
        let lines = self.until(needle);
        let line = lines.last().expect("a line");
        let at = line.find(needle).expect("found") + needle.len();
        line[at..].trim().to_owned()
    }

    /// Every line until the process closes standard error (it exited).
    pub fn to_end(&self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(LINE_WAIT) {
            seen.push(line);
        }
        seen
    }

    /// Waits for the process to exit; its status code.
    pub fn wait(&mut self) -> Option<i32> {
        self.child.wait().ok().and_then(|s| s.code())
    }
}
