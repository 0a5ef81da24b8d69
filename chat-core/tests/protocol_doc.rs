//! Keeps the annotated hex dumps in docs/protocol.md true: each dump must be exactly what the
//! code produces for the same frame.

use chat_core::frame::encode_frame;
use chat_core::protocol::{Body, ChatMessage, ClientFrame, Hello, ServerFrame, Target};
use chrono::{TimeZone, Utc};

fn hello() -> ClientFrame {
    ClientFrame::Hello(Hello {
        version: 1,
        nick: "alice".into(),
        client: "chat-tui/0.1.0".into(),
        password: None,
    })
}

fn message() -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id: 42,
        at: Utc
            .with_ymd_and_hms(2026, 11, 21, 12, 4, 31)
            .single()
            .expect("valid time")
            + chrono::Duration::milliseconds(250),
        from: "alice".into(),
        to: Target::Room("lobby".into()),
        body: Body::Text("hi bob".into()),
        attrs: vec![],
        tag: None,
    })
}

/// The bytes of the dump that follows `<!-- hexdump: NAME -->` in the document: on each line
/// of the code block, the leading two-digit hex tokens (the rest is annotation).
fn dump(doc: &str, name: &str) -> Vec<u8> {
    let marker = format!("<!-- hexdump: {name} -->");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in docs/protocol.md"));
    let mut lines = doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1);
    let mut bytes = Vec::new();
    for line in lines.by_ref() {
        if line.starts_with("```") {
            return bytes;
        }
        for token in line.split_whitespace() {
            match u8::from_str_radix(token, 16) {
                Ok(b) if token.len() == 2 => bytes.push(b),
                _ => break,
            }
        }
    }
    panic!("unterminated code block after {marker}");
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn documented_hello_is_what_the_code_sends() {
    let doc = include_str!("../../docs/protocol.md");
    let real = encode_frame(&hello(), 4096).expect("encode");
    assert_eq!(
        hex(&dump(doc, "hello")),
        hex(&real),
        "update docs/protocol.md"
    );
}

#[test]
fn documented_message_is_what_the_code_sends() {
    let doc = include_str!("../../docs/protocol.md");
    let real = encode_frame(&message(), 4096).expect("encode");
    assert_eq!(
        hex(&dump(doc, "message")),
        hex(&real),
        "update docs/protocol.md"
    );
}

#[test]
fn documented_file_frames_are_what_the_code_sends() {
    let doc = include_str!("../../docs/protocol.md");
    for (name, frame) in [
        (
            "file-chunk",
            ClientFrame::FileChunk {
                id: 3,
                data: b"hi".to_vec(),
            },
        ),
        (
            "file-ack",
            ClientFrame::FileAck {
                id: 3,
                received: 65_536,
            },
        ),
    ] {
        let real = encode_frame(&frame, 4096).expect("encode");
        assert_eq!(hex(&dump(doc, name)), hex(&real), "update docs/protocol.md");
    }
}

#[test]
fn documented_kick_is_what_the_code_sends() {
    let doc = include_str!("../../docs/protocol.md");
    let kick = ClientFrame::Kick {
        room: Some("rust".into()),
        nick: "bob".into(),
        reason: "spamming".into(),
    };
    let real = encode_frame(&kick, 4096).expect("encode");
    assert_eq!(
        hex(&dump(doc, "kick")),
        hex(&real),
        "update docs/protocol.md"
    );
}

#[test]
fn documented_react_is_what_the_code_sends() {
    let doc = include_str!("../../docs/protocol.md");
    let react = ClientFrame::React {
        id: 42,
        emoji: "👍".into(),
    };
    let real = encode_frame(&react, 4096).expect("encode");
    assert_eq!(
        hex(&dump(doc, "react")),
        hex(&real),
        "update docs/protocol.md"
    );
}

#[test]
fn documented_mentions_is_what_the_code_sends() {
    let doc = include_str!("../../docs/protocol.md");
    let mentions = ClientFrame::Mentions {
        before: Some(300),
        limit: 2,
    };
    let real = encode_frame(&mentions, 4096).expect("encode");
    assert_eq!(
        hex(&dump(doc, "mentions")),
        hex(&real),
        "update docs/protocol.md"
    );
}
