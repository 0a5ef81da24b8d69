//! File transfers end to end: real `chat-tui --plain` processes (and, where a test needs a
//! peer that misbehaves or stops at a given point, a client of the test's own) against a real
//! server: a 50 MB file received byte-identical by a bot with `--accept-files-from`, a second
//! copy saved without overwriting the first, a hostile name saved harmlessly, a decline, a
//! cancel from each side, the size limit, and an interruption that leaves no file behind.

use std::path::Path;
use std::time::Duration;

use chat_core::client::{ConnectOptions, TcpClient, connect};
use chat_core::files::sha256;
use chat_core::protocol::{ClientFrame, ServerFrame};

#[path = "support/plain.rs"]
mod plain;
use plain::{Plain, TestServer, WAIT, start_server_with};

/// How long a transfer of tens of megabytes may take in a debug build.
const TRANSFER_WAIT: Duration = Duration::from_secs(120);

async fn server() -> TestServer {
    start_server_with(|c| {
        c.rate.burst = 1_000_000;
        c.rate.per_sec = 1_000_000.0;
        c.files.rate = None;
    })
    .await
}

/// A client of the test's own.
async fn raw(server: &TestServer, nick: &str) -> TcpClient {
    connect(&server.addr.to_string(), &ConnectOptions::new(nick))
        .await
        .expect("connect")
}

/// The next frame `client` receives that `pred` accepts.
async fn next(client: &mut TcpClient, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    tokio::time::timeout(WAIT, async {
        loop {
            match client.events.next().await {
                Ok(Some(f)) if pred(&f) => return f,
                Ok(Some(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("in time")
}

/// The files in `dir`, hidden ones included, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits for a line with `needle`, for as long as a transfer may take.
fn expect_slow(plain: &mut Plain, needle: &str) -> String {
    let deadline = std::time::Instant::now() + TRANSFER_WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match plain.lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => plain.seen.push(line),
            Err(e) => panic!("waiting for {needle:?}: {e}; output: {:#?}", plain.seen),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_receives_a_50_mb_file_byte_identical_and_a_second_copy_beside_it() {
    let server = server().await;
    let dir = tempfile::tempdir().expect("dir");
    let downloads = dir.path().join("downloads");
    let source = dir.path().join("big.bin");
    let data: Vec<u8> = (0..50_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&source, &data).expect("write");
    let dl = downloads.display().to_string();
    let mut bob = Plain::spawn(
        server.addr,
        &[
            "--nick",
            "bob",
            "--json",
            "--download-dir",
            &dl,
            "--accept-files-from",
            "carol,alice",
        ],
    );
    bob.expect("\"type\":\"welcome\"");
    let mut alice = Plain::spawn(server.addr, &["--nick", "alice"]);
    alice.expect("connected to");
    alice.type_line(&format!("/file bob {}", source.display()));
    alice.expect("offered big.bin (50.0 MB) to bob");
    let offer = bob.expect("\"type\":\"file_offer\"");
    assert!(offer.contains("\"from\":\"alice\""), "{offer}");
    let done = expect_slow(&mut bob, "\"type\":\"file_done\"");
    let saved = downloads.join("big.bin");
    assert!(
        done.contains(&format!("\"path\":\"{}\"", saved.display())),
        "{done}"
    );
    expect_slow(
        &mut alice,
        "sent big.bin (50.0 MB) to bob: received and verified",
    );
    let got = std::fs::read(&saved).expect("saved");
    assert!(got == data, "the file arrived changed");
    // The same file again: saved beside the first, which stays as it was.
    alice.type_line(&format!("/file bob {}", source.display()));
    expect_slow(&mut bob, "\"type\":\"file_done\"");
    assert_eq!(listing(&downloads), ["big (1).bin", "big.bin"]);
    assert_eq!(
        sha256(&std::fs::read(downloads.join("big (1).bin")).expect("read")),
        sha256(&data)
    );
    // Both stay connected and chat on.
    alice.type_line("that was all");
    bob.expect("that was all");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_is_saved_harmlessly_and_an_interrupted_transfer_leaves_nothing() {
    let server = server().await;
    let dir = tempfile::tempdir().expect("dir");
    let downloads = dir.path().join("in");
    let dl = downloads.display().to_string();
    let mut bob = Plain::spawn(
        server.addr,
        &[
            "--nick",
            "bob",
            "--download-dir",
            &dl,
            "--accept-files-from",
            "mallory",
        ],
    );
    bob.expect("connected to");
    let mut mallory = raw(&server, "mallory").await;
    let data = b"alias ls='rm -rf ~'\n".to_vec();
    let offer = ClientFrame::FileOffer {
        tag: 1,
        to: "bob".into(),
        name: "../../.bashrc".into(),
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    mallory.sender.send(&offer).await.expect("offer");
    let ServerFrame::FileOffered { id, .. } = next(&mut mallory, |f| {
        matches!(f, ServerFrame::FileOffered { .. })
    })
    .await
    else {
        unreachable!()
    };
    next(&mut mallory, |f| {
        matches!(f, ServerFrame::FileAnswer { accept: true, .. })
    })
    .await;
    let chunk = ClientFrame::FileChunk {
        id,
        data: data.clone(),
    };
    mallory.sender.send(&chunk).await.expect("chunk");
    next(&mut mallory, |f| matches!(f, ServerFrame::FileDone { .. })).await;
    let line = bob.expect("received");
    assert!(line.contains("saved as"), "{line}");
    assert_eq!(listing(&downloads), ["bashrc"]);
    assert_eq!(std::fs::read(downloads.join("bashrc")).expect("read"), data);
    assert!(!dir.path().join(".bashrc").exists());
    // Half of a file, then the sender is gone: no file under any name, no temporary file.
    let data = vec![7u8; 200_000];
    let offer = ClientFrame::FileOffer {
        tag: 2,
        to: "bob".into(),
        name: "half.bin".into(),
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    mallory.sender.send(&offer).await.expect("offer");
    let ServerFrame::FileOffered { id, .. } = next(&mut mallory, |f| {
        matches!(f, ServerFrame::FileOffered { .. })
    })
    .await
    else {
        unreachable!()
    };
    next(&mut mallory, |f| {
        matches!(f, ServerFrame::FileAnswer { accept: true, .. })
    })
    .await;
    let chunk = ClientFrame::FileChunk {
        id,
        data: data[..50_000].to_vec(),
    };
    mallory.sender.send(&chunk).await.expect("chunk");
    next(&mut mallory, |f| matches!(f, ServerFrame::FileAck { .. })).await;
    drop(mallory);
    let line = bob.expect("half.bin from mallory failed");
    assert!(line.contains("mallory disconnected"), "{line}");
    // The temporary file is removed as the transfer's thread ends; the message comes first.
    let deadline = std::time::Instant::now() + WAIT;
    while listing(&downloads).len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(listing(&downloads), ["bashrc"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_cancels_from_each_side_and_the_size_limit() {
    let server = start_server_with(|c| {
        c.rate.burst = 1_000_000;
        c.rate.per_sec = 1_000_000.0;
        c.files.rate = None;
        c.files.max_size = 3_000_000;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, vec![b'x'; 2_500_000]).expect("write");
    let big = dir.path().join("huge.iso");
    std::fs::write(&big, vec![0u8; 3_000_001]).expect("write");
    let dl = dir.path().join("in").display().to_string();
    let mut alice = Plain::spawn(server.addr, &["--nick", "alice"]);
    alice.expect("connected to");
    let mut bob = Plain::spawn(server.addr, &["--nick", "bob", "--download-dir", &dl]);
    bob.expect("connected to");
    // Over the server's limit: refused, with the limit.
    alice.type_line(&format!("/file bob {}", big.display()));
    let line = alice.expect("huge.iso to bob failed");
    assert!(line.contains("too large"), "{line}");
    // Declined.
    alice.type_line(&format!("/file bob {}", file.display()));
    bob.expect("alice offers notes.txt (2.5 MB");
    bob.type_line("/decline");
    alice.expect("notes.txt to bob failed: bob declined");
    // The recipient cancels in the middle: a sender of the test's own stops after a chunk.
    let mut carol = raw(&server, "carol").await;
    let data = vec![1u8; 100_000];
    let offer = ClientFrame::FileOffer {
        tag: 3,
        to: "bob".into(),
        name: "slow.bin".into(),
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    carol.sender.send(&offer).await.expect("offer");
    let ServerFrame::FileOffered { id, .. } =
        next(&mut carol, |f| matches!(f, ServerFrame::FileOffered { .. })).await
    else {
        unreachable!()
    };
    bob.expect(&format!("/accept {id}"));
    bob.type_line(&format!("/accept {id}"));
    next(&mut carol, |f| {
        matches!(f, ServerFrame::FileAnswer { accept: true, .. })
    })
    .await;
    let chunk = ClientFrame::FileChunk {
        id,
        data: data[..1000].to_vec(),
    };
    carol.sender.send(&chunk).await.expect("chunk");
    next(&mut carol, |f| matches!(f, ServerFrame::FileAck { .. })).await;
    bob.type_line(&format!("/cancel {id}"));
    bob.expect("slow.bin from carol failed: cancelled by you");
    let ServerFrame::FileCancelled { by, .. } = next(&mut carol, |f| {
        matches!(f, ServerFrame::FileCancelled { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(by, "bob");
    // The sender cancels: a recipient of the test's own accepts and never acknowledges, so
    // alice's client waits at the end of its window until she cancels.
    let mut dave = raw(&server, "dave").await;
    alice.type_line(&format!("/file dave {}", file.display()));
    let ServerFrame::FileOffer(info) =
        next(&mut dave, |f| matches!(f, ServerFrame::FileOffer(_))).await
    else {
        unreachable!()
    };
    let accept = ClientFrame::FileAnswer {
        id: info.id,
        accept: true,
    };
    dave.sender.send(&accept).await.expect("accept");
    next(&mut dave, |f| matches!(f, ServerFrame::FileChunk { .. })).await;
    alice.type_line("/cancel");
    alice.expect("notes.txt to dave failed: cancelled by you");
    let ServerFrame::FileCancelled { by, .. } = next(&mut dave, |f| {
        matches!(f, ServerFrame::FileCancelled { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(by, "alice");
    assert!(listing(&dir.path().join("in")).is_empty());
    alice.type_line("still here");
    bob.expect("still here");
    server.stop().await;
}
