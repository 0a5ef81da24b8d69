//! The certificate on the real binary: files that cannot be used stop the server at start
//! with an error naming the file, and SIGHUP serves a renewed certificate to new connections
//! while everyone connected stays.

use std::path::{Path, PathBuf};

use chat_core::client::{ClientError, ConnectOptions};
use chat_core::{Security, connect_secured};
use chat_testing::process::Console;
use chat_testing::*;

fn start(home: &Path, args: &[&str]) -> Console {
    Console::start(env!("CARGO_BIN_EXE_chat-server"), home, args)
}

/// A certificate for localhost and 127.0.0.1 valid over the years `from..until`, written to
/// `<name>.pem` and its key to `<name>.key` (mode `key_mode`) in `dir`.
fn certificate(dir: &Path, name: &str, from: i32, until: i32, key_mode: u32) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(key_mode))
            .expect("chmod");
    }
    (cert_path, key_path)
}

/// The server with `cert` and `key`: the lines it printed before exiting, and its status.
fn refused_at_start(home: &Path, cert: &Path, key: &Path) -> (Vec<String>, Option<i32>) {
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let mut server = start(
        home,
        &[
            "--port",
            "0",
            "--no-monitor",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    let lines = server.to_end();
    (lines, server.wait())
}

#[test]
fn unusable_certificate_files_stop_the_server_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path();
    let this_year = 2026;

    // A key anyone may read.
    let (cert, key) = certificate(home, "open", this_year - 1, this_year + 5, 0o644);
    let (lines, status) = refused_at_start(home, &cert, &key);
    assert_ne!(status, Some(0));
    let said = lines.join("\n");
    assert!(said.contains(key.to_str().expect("utf-8")), "{said}");
    assert!(said.contains("readable by others"), "{said}");

    // A key that is not the certificate's.
    let (cert, _) = certificate(home, "one", this_year - 1, this_year + 5, 0o600);
    let (_, other_key) = certificate(home, "two", this_year - 1, this_year + 5, 0o600);
    let (lines, status) = refused_at_start(home, &cert, &other_key);
    assert_ne!(status, Some(0));
    let said = lines.join("\n");
    assert!(said.contains(other_key.to_str().expect("utf-8")), "{said}");
    assert!(said.contains("does not match"), "{said}");

    // An expired certificate.
    let (cert, key) = certificate(home, "old", 2020, 2021, 0o600);
    let (lines, status) = refused_at_start(home, &cert, &key);
    assert_ne!(status, Some(0));
    let said = lines.join("\n");
    assert!(said.contains(cert.to_str().expect("utf-8")), "{said}");
    assert!(said.contains("expired"), "{said}");
}

/// The first `SHA256:…` word of `line`.
fn fingerprint_in(line: &str) -> String {
    let at = line.find("SHA256:").expect("a fingerprint");
    line[at..]
        .split_whitespace()
        .next()
        .expect("word")
        .to_owned()
}

async fn pinned(
    addr: &str,
    nick: &str,
    fingerprint: &str,
) -> Result<chat_core::NetClient, ClientError> {
    let security = Security::Tls {
        pinned: Some(fingerprint.to_owned()),
    };
    connect_secured(addr, &ConnectOptions::new(nick), &security).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_renewed_certificate_and_nobody_is_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path().to_owned();
    let (cert, key) = certificate(&home, "live", 2025, 2030, 0o600);
    let args = [
        "--port",
        "0",
        "--no-monitor",
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ];
    let server = start(&home, &args);
    let (addr, old) = tokio::task::block_in_place(|| {
        let addr = server.after("listening on ");
        let old = fingerprint_in(&server.until("TLS certificate").join("\n"));
        (addr, old)
    });
    let mut alice = pinned(&addr, "alice", &old).await.expect("alice");
    let mut bob = pinned(&addr, "bob", &old).await.expect("bob");

    // Renewed: new files in place, then SIGHUP.
    let renewed = home.join("renewed");
    std::fs::create_dir_all(&renewed).expect("dir");
    let (new_cert, new_key) = certificate(&renewed, "live", 2026, 2031, 0o600);
    std::fs::rename(&new_key, &key).expect("key in place");
    std::fs::rename(&new_cert, &cert).expect("certificate in place");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let new =
        tokio::task::block_in_place(|| fingerprint_in(&server.after("TLS certificate reloaded:")));
    assert_ne!(new, old);

    // New connections get the new certificate; the old one is no longer presented.
    let mut carol = pinned(&addr, "carol", &new).await.expect("carol");
    match pinned(&addr, "dave", &old).await {
        Err(ClientError::Untrusted { fingerprint, .. }) => assert_eq!(fingerprint, new),
        other => panic!("expected the new certificate: {other:?}"),
    }
    // Those connected before are still there, and chat with the newcomer.
    still_chatting(&mut alice, &mut bob, "after the reload").await;
    still_chatting(&mut bob, &mut carol, "old and new").await;
}
