//! The monitor page in a real browser: a server with its monitor, two real `chat-tui --plain`
//! clients chatting and sending private messages, and headless Chromium (driven through
//! ChromeDriver) showing them. Needs Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them); `CHROMIUM` and `CHROMEDRIVER` point elsewhere if needed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_server::{Config, MonitorConfig, Server};
use chat_service::Secret;
use fantoccini::{ClientBuilder, Locator};

const WAIT: Duration = Duration::from_secs(20);
/// Starting Chromium is the slow step: cold, on two busy cores, it has taken over 20 s.
const BROWSER_START: Duration = Duration::from_secs(90);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} not found: install Debian's chromium and chromium-driver (.ci/run does), \
         or set {var}"
    );
    path
}

/// Starts ChromeDriver on a free port; returns it and its URL.
fn chromedriver() -> (Proc, String) {
    let mut child = Command::new(tool("CHROMEDRIVER", "/usr/bin/chromedriver"))
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .map(|p| p.trim_end_matches('.').to_owned())
            {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(WAIT)
        .expect("chromedriver reports its port");
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// A `chat-tui --plain` process fed through its standard input.
fn line_client(server: &str, nick: &str) -> (Proc, std::process::ChildStdin) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-tui"))
        .args(["--plain", "--nick", nick, "--server", server])
        .env("XDG_CONFIG_HOME", "/nonexistent/chat-tui-tests")
        .env_remove("CHAT_TUI_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat-tui");
    let stdin = child.stdin.take().expect("stdin");
    (Proc(child), stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_public_and_private_messages_live() {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        monitor: Some(MonitorConfig {
            http_port: 0,
            ws_port: None,
            token: Some(Secret::from("browser-test-token")),
            ..MonitorConfig::default()
        }),
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind").spawn();
    let chat = server.addr().to_string();
    let url = server.monitor().expect("monitor").url();

    let (_driver, driver_url) = chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": tool("CHROMIUM", "/usr/bin/chromium"),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = tokio::time::timeout(
        BROWSER_START,
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver_url),
    )
    .await
    .expect("browser starts in time")
    .expect("browser session");

    // The page first, so that everything after arrives live.
    browser.goto(&url).await.expect("open the monitor");
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//span[@id='state' and text()='live']"))
        .await
        .expect("the page says it is live");

    let (_alice, mut alice) = line_client(&chat, "alice");
    let (_bob, mut bob) = line_client(&chat, "bob");
    writeln!(alice, "hello from alice").expect("type");
    writeln!(bob, "hello from bob").expect("type");
    alice.flush().expect("flush");
    bob.flush().expect("flush");

    let row =
        |text: &str| format!("//tbody[@id='events']/tr[td[@class='text' and text()='{text}']]");
    for text in ["hello from alice", "hello from bob"] {
        let tr = browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&row(text)))
            .await
            .unwrap_or_else(|e| panic!("{text:?} shown: {e}"));
        let from = tr
            .find(Locator::Css("td.from"))
            .await
            .expect("from cell")
            .text()
            .await
            .expect("text");
        assert_eq!(format!("hello from {from}"), text);
    }
    // Bob is online (his message was shown): now a private message to him.
    writeln!(alice, "/msg bob psst, private to bob").expect("type");
    alice.flush().expect("flush");
    let pm = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&row("psst, private to bob")))
        .await
        .expect("the private message is shown");
    assert_eq!(
        pm.attr("class").await.expect("class").as_deref(),
        Some("private")
    );
    let cells: Vec<String> = {
        let mut v = Vec::new();
        for td in pm.find_all(Locator::Css("td")).await.expect("cells") {
            v.push(td.text().await.expect("text"));
        }
        v
    };
    assert_eq!(&cells[1..4], ["private", "alice", "→ bob"]);

    // The stats panel got its numbers (with the token, from the page's script).
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//dd[@id='s-viewers' and text()='1']"))
        .await
        .expect("the stats panel is filled");

    // A picture for the documentation.
    let png = browser.screenshot().await.expect("screenshot");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("monitor.png");
    std::fs::write(&path, png).expect("save the screenshot");

    browser.close().await.expect("close the browser");
    drop((alice, bob));
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}
