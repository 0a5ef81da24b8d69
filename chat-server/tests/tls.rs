//! TLS on the chat port: logging in and chatting over it, what someone between a client and
//! the server sees (nothing of a password or a message), a certificate that is not the one
//! trusted, unencrypted connections from elsewhere, and a renewed certificate served without
//! dropping anyone.

use std::sync::{Arc, Mutex};

use chat_core::client::ClientError;
use chat_core::protocol::RejectReason;
use chat_testing::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn tls_server(dir: &tempfile::TempDir) -> TestServer {
    TestServer::start_with(|c| {
        with_tls(dir.path())(c);
        c.db = chat_server::DbLocation::File(dir.path().join("chat.db"));
        generous_rate(c);
    })
    .await
}

#[tokio::test]
async fn an_account_logs_in_and_chats_over_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let server = tls_server(&dir).await;
    let fp = server.fingerprint();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    let mut alice = tls_client(&server, "alice", None, &fp).await.expect("tls");
    register(&mut alice, "correct horse").await;
    quit(alice).await;
    let mut alice = tls_client(&server, "alice", Some("correct horse"), &fp)
        .await
        .expect("log in over TLS");
    let mut bob = tls_client(&server, "bob", None, &fp).await.expect("tls");
    still_chatting(&mut alice, &mut bob, "over tls").await;
    // A plain client on the same machine chats with them on the same port.
    let mut carol = server.client("carol").await;
    still_chatting(&mut bob, &mut carol, "plain and tls together").await;
    server.stop().await;
}

/// Forwards one connection at a time between its port and `to`, keeping every byte that
/// passes, both ways.
async fn sniffing_proxy(to: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(to).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (up, down) = (record.clone(), record.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    up.lock().expect("lock").extend_from_slice(&buf[..n]);
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = sr.read(&mut buf).await {
                    down.lock().expect("lock").extend_from_slice(&buf[..n]);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn someone_in_between_sees_no_password_and_no_message() {
    let dir = tempfile::tempdir().expect("dir");
    let server = tls_server(&dir).await;
    let fp = server.fingerprint();
    let (proxy, seen_by_proxy) = sniffing_proxy(server.addr).await;
    let (addr, opts) = (proxy.to_string(), chat_core::ConnectOptions::new("alice"));
    let security = chat_core::Security::Tls {
        pinned: Some(fp.clone()),
    };
    let mut alice = chat_core::connect_secured(&addr, &opts, &security)
        .await
        .expect("through the proxy");
    let mut bob = tls_client(&server, "bob", None, &fp).await.expect("bob");
    register(&mut alice, "hunter2-but-longer").await;
    send(
        &mut alice,
        chat_core::protocol::ClientFrame::SetPassword {
            password: "a-new-secret-password".into(),
        },
    )
    .await;
    expect(&mut alice, "PasswordChanged", |f| {
        matches!(f, chat_core::protocol::ServerFrame::PasswordChanged)
    })
    .await;
    still_chatting(&mut alice, &mut bob, "the secret plans").await;
    quit(alice).await;
    let seen = seen_by_proxy.lock().expect("lock").clone();
    assert!(
        seen.len() > 500,
        "the proxy saw the traffic ({} bytes)",
        seen.len()
    );
    for secret in [
        "hunter2-but-longer",
        "a-new-secret-password",
        "the secret plans",
        "alice",
    ] {
        assert!(
            !contains(&seen, secret),
            "{secret:?} crossed the proxy readable"
        );
    }
    // Without TLS the same proxy reads everything: the check above can see a leak.
    seen_by_proxy.lock().expect("lock").clear();
    let mut zoe = chat_core::connect_secured(
        &addr,
        &chat_core::ConnectOptions::new("zoe"),
        &chat_core::Security::Plain,
    )
    .await
    .expect("plain from loopback");
    still_chatting(&mut zoe, &mut bob, "words anyone can read").await;
    assert!(contains(
        &seen_by_proxy.lock().expect("lock"),
        "words anyone can read"
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_other_than_the_trusted_one_is_refused_with_its_fingerprint() {
    let dir = tempfile::tempdir().expect("dir");
    let server = tls_server(&dir).await;
    let fp = server.fingerprint();
    let old = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    match tls_client(&server, "alice", None, old).await {
        Err(ClientError::Untrusted {
            fingerprint,
            server: name,
        }) => {
            assert_eq!(fingerprint, fp);
            assert_eq!(name, server.addr.to_string());
        }
        other => panic!("expected the certificate to be refused, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn unencrypted_connections_from_elsewhere_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_tls(dir.path())(c);
        // The documented test hook: loopback counts as another machine.
        c.loopback_is_remote = true;
    })
    .await;
    let (reason, message) = refused(server.client_result("plain").await);
    assert_eq!(reason, RejectReason::TlsRequired);
    assert!(message.contains("connect with TLS"), "{message}");
    // An older client (version 2) is told in a reason it knows.
    let (mut r, mut w) = raw(server.addr).await;
    w.write_all(&hello("old", 2)).await.expect("hello");
    let (reason, _) = rejection(&frames_until_close(&mut r).await);
    assert_eq!(reason, RejectReason::Malformed);
    // Over TLS, the same client is welcome.
    let fp = server.fingerprint();
    tls_client(&server, "secure", None, &fp).await.expect("tls");
    server.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections_without_dropping_anyone() {
    let dir = tempfile::tempdir().expect("dir");
    let server = tls_server(&dir).await;
    let old = server.fingerprint();
    let mut alice = tls_client(&server, "alice", None, &old)
        .await
        .expect("alice");
    let mut bob = tls_client(&server, "bob", None, &old).await.expect("bob");
    // A new certificate in place of the old one, then a reload (what SIGHUP does).
    std::fs::remove_file(dir.path().join("tls/cert.pem")).expect("rm");
    std::fs::remove_file(dir.path().join("tls/key.pem")).expect("rm");
    let tls = server.tls().expect("tls");
    let new = tls.reload().expect("reload");
    assert_ne!(new, old);
    assert_eq!(server.fingerprint(), new);
    // Those connected stay; newcomers get the new certificate.
    still_chatting(&mut alice, &mut bob, "still here").await;
    assert!(matches!(
        tls_client(&server, "carol", None, &old).await,
        Err(ClientError::Untrusted { fingerprint, .. }) if fingerprint == new
    ));
    let mut carol = tls_client(&server, "carol", None, &new)
        .await
        .expect("carol");
    still_chatting(&mut carol, &mut alice, "hello carol").await;
    server.stop().await;
}

/// A TLS connection to `addr` trusting the certificate `fingerprint`.
async fn tls_to(
    addr: std::net::SocketAddr,
    fingerprint: &str,
) -> chat_core::tls::tokio_rustls::client::TlsStream<TcpStream> {
    let seen = Arc::new(Mutex::new(None));
    let config = chat_core::tls::client_config(Some(fingerprint.to_owned()), seen).expect("config");
    let connector = chat_core::tls::tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = chat_core::tls::server_name(&addr.to_string()).expect("name");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

#[tokio::test]
async fn off_loopback_the_monitor_is_served_over_https_and_wss_only() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    const TOKEN: &str = "test-token-0123456789";
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_tls(dir.path())(c);
        c.monitor = Some(chat_server::MonitorConfig {
            http_port: 0,
            ws_port: Some(0),
            token: Some(chat_service::Secret::from(TOKEN)),
            ..chat_server::MonitorConfig::default()
        });
        // The monitor's address counts as off loopback (the documented test hook).
        c.loopback_is_remote = true;
        generous_rate(c);
    })
    .await;
    let fp = server.fingerprint();
    let info = server.monitor.clone().expect("monitor");
    assert!(info.url().starts_with("https://"), "{}", info.url());
    assert!(info.feed_url().expect("feed").starts_with("wss://"));

    // The page, over HTTPS.
    let mut page = tls_to(info.http, &fp).await;
    let req = format!(
        "GET /?token={TOKEN} HTTP/1.1\r\nHost: {}\r\n\r\n",
        info.http
    );
    page.write_all(req.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, page.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("<html"), "the page itself");

    // Plain HTTP gets no page (and no token check to probe).
    let mut plain = TcpStream::connect(info.http).await.expect("connect");
    plain.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut raw)).await;
    assert!(!String::from_utf8_lossy(&raw).contains("HTTP/1.1 200"));

    // The feed, over WSS on both ways in, from the page's https origin.
    let origin = format!("https://{}", info.http);
    let mut feeds = Vec::new();
    for (addr, path) in [(info.http, "/ws"), (info.ws.expect("ws"), "/")] {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("wss://{addr}{path}?token={TOKEN}"),
            )
            .expect("request");
        req.headers_mut()
            .insert("Origin", origin.parse().expect("header"));
        let stream = tls_to(addr, &fp).await;
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .expect("WSS handshake");
        feeds.push(ws);
    }
    let mut alice = tls_client(&server, "alice", None, &fp).await.expect("tls");
    alice
        .sender
        .say("lobby", "seen on wss")
        .await
        .expect("send");
    for ws in &mut feeds {
        let text = loop {
            match tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("in time")
            {
                Some(Ok(Message::Text(t))) if t.contains("seen on wss") => break t,
                Some(Ok(_)) => {}
                other => panic!("feed ended: {other:?}"),
            }
        };
        assert!(text.contains("\"from\":\"alice\""), "{text}");
    }
    server.stop().await;
}
