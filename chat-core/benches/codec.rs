//! Encoding and decoding a typical chat message: what the server does once per message it
//! fans out (encode) and once per message it receives (decode), and what every client does
//! per message it receives. Run with `cargo bench -p chat-core`.

use chat_core::frame::{LEN_PREFIX, decode_payload, encode_frame};
use chat_core::protocol::{
    Body, ChatMessage, ClientFrame, MAX_SERVER_FRAME, Outgoing, ServerFrame, Target,
};
use divan::black_box;

fn main() {
    divan::main();
}

/// 64 bytes of text to the lobby, as in the fan-out benchmarks.
fn text() -> String {
    "a typical line of chat, sixty-four bytes long, give or take a few".to_owned()
}

fn delivered() -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id: 123_456,
        at: chrono::Utc::now(),
        from: "alice".into(),
        to: Target::Room("lobby".into()),
        body: Body::Text(text()),
        attrs: Vec::new(),
        tag: None,
    })
}

fn sent() -> ClientFrame {
    ClientFrame::Send(Outgoing {
        tag: 42,
        to: Target::Room("lobby".into()),
        body: Body::Text(text()),
        attrs: Vec::new(),
    })
}

#[divan::bench]
fn encode_delivered_message(bencher: divan::Bencher) {
    let frame = delivered();
    bencher.bench(|| {
        encode_frame(black_box(&frame), MAX_SERVER_FRAME)
            .map(|b| b.len())
            .unwrap_or(0)
    });
}

#[divan::bench]
fn decode_delivered_message(bencher: divan::Bencher) {
    let bytes = encode_frame(&delivered(), MAX_SERVER_FRAME).expect("encode");
    bencher.bench(|| decode_payload::<ServerFrame>(black_box(&bytes[LEN_PREFIX..])).is_ok());
}

#[divan::bench]
fn decode_sent_message(bencher: divan::Bencher) {
    let bytes = encode_frame(&sent(), MAX_SERVER_FRAME).expect("encode");
    bencher.bench(|| decode_payload::<ClientFrame>(black_box(&bytes[LEN_PREFIX..])).is_ok());
}
