//! `chat-server admin backup PATH` on the real binary, while a server uses the database.

use std::process::{Command, Output};

use chat_server::DbLocation;
use chat_server::store::SqliteStore;
use chat_testing::*;

fn admin(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CHAT_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("CHAT_SERVER_CONFIG", "/dev/null")
        .output()
        .expect("run chat-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_writes_is_complete_private_and_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        c.db = DbLocation::File(db.clone());
    })
    .await;
    let mut alice = server.client("alice").await;
    register(&mut alice, "correct horse").await;
    for i in 0..20 {
        alice
            .sender
            .say("lobby", &format!("kept {i}"))
            .await
            .expect("say");
    }
    // Acknowledged: stored before the echo.
    expect_text(&mut alice, "kept 19").await;

    let copy = dir.path().join("backups/chat-copy.db");
    let (db_s, copy_s) = (db.to_str().expect("utf-8"), copy.to_str().expect("utf-8"));
    let out = tokio::task::spawn_blocking({
        let (db_s, copy_s) = (db_s.to_owned(), copy_s.to_owned());
        move || admin(&["--db", &db_s, "admin", "backup", &copy_s])
    })
    .await
    .expect("join");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("backed up to") && said.contains("20 messages"),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the copy holds private messages");
    }
    // The server goes on meanwhile.
    alice
        .sender
        .say("lobby", "after the backup")
        .await
        .expect("say");
    expect_text(&mut alice, "after the backup").await;

    // The copy is a database the server opens: the account and the messages are there.
    let store = SqliteStore::open(&copy).expect("open the copy");
    let db = store.connection();
    let texts: Vec<String> = db
        .prepare("SELECT body FROM messages ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(texts.len(), 20);
    assert_eq!(texts[19], "kept 19");
    let accounts: i64 = db
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .expect("accounts");
    assert_eq!(accounts, 1);

    // A backup never overwrites, and an in-memory database has none.
    let out = admin(&["--db", db_s, "admin", "backup", copy_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = admin(&["--db", ":memory:", "admin", "backup", "x.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in memory"));
    server.stop().await;
}
