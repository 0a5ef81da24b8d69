//! The monitor page in a real browser: a server with its monitor, two real `chat-tui --plain`
//! clients chatting and sending private messages, and headless Chromium (driven through
//! ChromeDriver) showing them; edits, reactions, deletions and expiries; what users type that
//! is far too long, and a token the server no longer accepts. Needs Debian's `chromium` and
//! `chromium-driver` (`.ci/run` installs them); `CHROMIUM` and `CHROMEDRIVER` point elsewhere
//! if needed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_core::client::{ConnectOptions, connect};
use chat_core::protocol::{Body, ClientFrame, MessageAttr, Outgoing, ServerFrame, Target};
use chat_server::{Config, MonitorConfig, RunningServer, Server};
use chat_service::Secret;
use fantoccini::{Client, ClientBuilder, Locator};

const WAIT: Duration = Duration::from_secs(20);
/// Starting Chromium is the slow step: cold, on two busy cores, it has taken over 20 s.
const BROWSER_START: Duration = Duration::from_secs(90);

/// One browser at a time: two Chromiums starting at once on two cores can miss their timeout.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
        .args(["--plain", "--plaintext", "--nick", nick, "--server", server])
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

/// A server on free ports whose monitor (on `http_port`, 0 for a free one) takes `token`.
async fn monitored_server(token: &str, http_port: u16) -> RunningServer {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        monitor: Some(MonitorConfig {
            http_port,
            ws_port: None,
            token: Some(Secret::from(token)),
            ..MonitorConfig::default()
        }),
        ..Config::default()
    };
    Server::bind(config).await.expect("bind").spawn()
}

/// Headless Chromium, driven through ChromeDriver; keep the three together until the end.
struct Browser {
    client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let (driver, driver_url) = chromedriver();
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
        let client = tokio::time::timeout(
            BROWSER_START,
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&driver_url),
        )
        .await
        .expect("browser starts in time")
        .expect("browser session");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Opens the monitor at `url` and waits until it says it is live.
    async fn open_live(&self, url: &str) {
        self.client.goto(url).await.expect("open the monitor");
        self.wait_for(
            "//span[@id='state' and text()='live']",
            "the page says it is live",
        )
        .await;
    }

    async fn wait_for(&self, xpath: &str, what: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Saves a screenshot as `name` in the test's temporary folder.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).expect("save the screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_public_and_private_messages_live() {
    let _one = ONE_BROWSER.lock().await;
    let server = monitored_server("browser-test-token", 0).await;
    let chat = server.addr().to_string();
    let url = server.monitor().expect("monitor").url();
    let session = Browser::start().await;
    let browser = &session.client;

    // The page first, so that everything after arrives live.
    session.open_live(&url).await;

    let (_alice, mut alice) = line_client(&chat, "alice");
    let (_bob, mut bob) = line_client(&chat, "bob");
    writeln!(alice, "hello from alice").expect("type");
    writeln!(bob, "hello from bob").expect("type");
    alice.flush().expect("flush");
    bob.flush().expect("flush");

    let row = |text: &str| format!("//tbody[@id='events']/tr[td[@class='text' and .='{text}']]");
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

    // A right-to-left override cannot reverse how a message reads: it shows as U+FFFD, as in
    // the terminal clients.
    writeln!(bob, "invoice\u{202E}fdp.exe").expect("type");
    bob.flush().expect("flush");
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&row("invoice\u{FFFD}fdp.exe")))
        .await
        .expect("the override is shown as U+FFFD");

    // The stats panel got its numbers (with the token, from the page's script).
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//dd[@id='s-viewers' and text()='1']"))
        .await
        .expect("the stats panel is filled");

    // A picture for the documentation.
    session.screenshot("monitor.png").await;

    browser.clone().close().await.expect("close the browser");
    drop((alice, bob));
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}

/// A monitored server, and a browser showing its monitor live (one browser at a time: keep
/// the guard).
async fn live_page() -> (tokio::sync::MutexGuard<'static, ()>, RunningServer, Browser) {
    let one = ONE_BROWSER.lock().await;
    let server = monitored_server("browser-test-token", 0).await;
    let session = Browser::start().await;
    session
        .open_live(&server.monitor().expect("monitor").url())
        .await;
    (one, server, session)
}

/// The id of the next message `client` receives with `text`.
async fn id_of(client: &mut chat_core::client::TcpClient, text: &str) -> u64 {
    let wait = async {
        loop {
            match client.events.next().await {
                Ok(Some(ServerFrame::Message(m))) if m.body.text() == text => return m.id,
                Ok(Some(_)) => {}
                other => panic!("waiting for {text:?}: {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.expect("in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reactions_deletions_and_expiries_show_on_the_page() {
    let (_one, server, session) = live_page().await;
    let chat = server.addr().to_string();
    let mut alice = connect(&chat, &ConnectOptions::new("alice"))
        .await
        .expect("alice connects");
    let mut bob = connect(&chat, &ConnectOptions::new("bob"))
        .await
        .expect("bob connects");
    let say = |text: &str, attrs: Vec<MessageAttr>| {
        ClientFrame::Send(Outgoing {
            tag: 1,
            to: Target::Room("lobby".into()),
            body: Body::Text(text.into()),
            attrs,
        })
    };
    for (text, attrs) in [
        ("teh first", vec![]),
        ("spam", vec![]),
        ("gone in a second", vec![MessageAttr::ExpiresIn(1)]),
    ] {
        alice.sender.send(&say(text, attrs)).await.expect("say");
    }
    let first = id_of(&mut bob, "teh first").await;
    let spam = id_of(&mut bob, "spam").await;
    let expiring = id_of(&mut bob, "gone in a second").await;
    let edit = ClientFrame::Edit {
        id: first,
        text: "the first".into(),
    };
    let react = ClientFrame::React {
        id: first,
        emoji: "👍".into(),
    };
    alice.sender.send(&edit).await.expect("edit");
    bob.sender.send(&react).await.expect("react");
    let delete = ClientFrame::Delete { id: spam };
    alice.sender.send(&delete).await.expect("delete");

    let row = |kind: &str, text: &str| {
        format!(
            "//tbody[@id='events']/tr[td[@class='kind' and .='{kind}'] and td[@class='text' and \
             .='{text}']]"
        )
    };
    for (kind, text) in [
        ("edit", format!("message {first} now reads: the first")),
        (
            "reaction",
            format!("reacted 👍 to message {first} from alice"),
        ),
        ("delete", format!("deleted message {spam} from alice")),
        ("expired", format!("message {expiring} from alice expired")),
    ] {
        session.wait_for(&row(kind, &text), &text).await;
    }
    session.screenshot("monitor-message-ops.png").await;
    session.client.close().await.expect("close the browser");
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}

/// What the page measures of itself, once a refused 200-character nickname and a
/// 4,000-character message are shown: how far the table sticks out of its panel, and each
/// row's height, cut and tooltip. (The refusal's text quotes the nickname: it wraps.)
const MEASURE: &str = r##"
const feed = document.getElementById("feed");
const rows = [...document.querySelectorAll("#events tr")];
const nickRow = rows.find((r) => r.querySelector("td.from")?.textContent === arguments[0]);
const textRow = rows.find((r) => r.querySelector("td.text")?.textContent.startsWith("word "));
const from = nickRow.querySelector("td.from");
return {
  table_past_panel: feed.querySelector("table").scrollWidth - feed.clientWidth,
  page_past_window: document.documentElement.scrollWidth - window.innerWidth,
  nick_row_height: nickRow.getBoundingClientRect().height,
  nick_text_height: (() => { const r = document.createRange(); r.selectNodeContents(from.firstChild); return r.getBoundingClientRect().height; })(),
  nick_cut: from.scrollWidth > from.clientWidth,
  nick_overflow: getComputedStyle(from).textOverflow,
  nick_title: from.title,
  text_row_height: textRow.getBoundingClientRect().height,
  text_title_length: textRow.querySelector("td.text").title.length,
};
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_nickname_and_a_long_message_stay_inside_the_page() {
    let (_one, server, session) = live_page().await;
    let chat = server.addr().to_string();

    // A connection refused for its 200-character nickname, then a 4,000-character message.
    let nick = "Bartholomew".repeat(19) + "xyz";
    assert_eq!(nick.len(), 212);
    let nick = nick[..200].to_owned();
    let refused = connect(&chat, &ConnectOptions::new(nick.as_str())).await;
    assert!(refused.is_err(), "a 200-character nickname is refused");
    let text = "word ".repeat(600) + &"y".repeat(1000);
    assert_eq!(text.len(), 4000);
    let mut carol = connect(&chat, &ConnectOptions::new("carol"))
        .await
        .expect("carol connects");
    carol.sender.say("lobby", text.as_str()).await.expect("say");
    let nick_row = format!("//tbody[@id='events']/tr[td[@class='from' and .='{nick}']]");
    session.wait_for(&nick_row, "the refusal is shown").await;
    let text_row = "//tbody[@id='events']/tr[td[@class='from' and .='carol'] and td[@class='kind' and .='message']]";
    session
        .wait_for(text_row, "the long message is shown")
        .await;

    let m = session
        .client
        .execute(MEASURE, vec![serde_json::json!(nick)])
        .await
        .expect("measure the page");
    session.screenshot("monitor-long-fields.png").await;
    let number = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"));
    assert!(number("table_past_panel") <= 0.0, "{m}");
    assert!(number("page_past_window") <= 0.0, "{m}");
    assert!(
        number("nick_text_height") < 30.0,
        "the name is one line: {m}"
    );
    assert!(number("nick_row_height") < 200.0, "{m}");
    assert_eq!(m["nick_cut"], true, "{m}");
    assert_eq!(m["nick_overflow"], "ellipsis", "{m}");
    assert_eq!(
        m["nick_title"],
        nick.as_str(),
        "the whole name in the tooltip"
    );
    assert!(number("text_row_height") < 200.0, "six lines at most: {m}");
    assert!(number("text_title_length") >= 2000.0, "{m}");

    session.client.close().await.expect("close the browser");
    let _ = tokio::time::timeout(WAIT, server.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_no_longer_accepted_is_explained_and_not_retried() {
    let _one = ONE_BROWSER.lock().await;
    let first = monitored_server("the-first-token-0123", 0).await;
    let monitor = first.monitor().expect("monitor").clone();
    let session = Browser::start().await;
    session.open_live(&monitor.url()).await;

    // The server comes back on the same port with another token.
    tokio::time::timeout(WAIT, first.shutdown())
        .await
        .expect("the first server stops");
    let second = monitored_server("the-second-token-456", monitor.http.port()).await;
    session
        .wait_for(
            "//span[@id='state' and text()=\"the token was refused: open the new link from the \
             server's console\"]",
            "the page says its token was refused",
        )
        .await;

    session.client.close().await.expect("close the browser");
    let _ = tokio::time::timeout(WAIT, second.shutdown()).await;
}
