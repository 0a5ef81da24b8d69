//! Property tests of the codec: every frame survives a round trip, and any byte string decodes
//! to frames or a clean error, never a panic.

use bytes::BytesMut;
use chat_core::frame::{FrameCodec, decode_payload, encode_frame};
use chat_core::protocol::*;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,40}", "[a-z]{1,8}", "\\PC{0,200}"]
}

fn ts() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800_000).prop_map(|ms| Utc.timestamp_millis_opt(ms).single().expect("valid"))
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        text().prop_map(Target::Room),
        prop::collection::vec(text(), 0..4).prop_map(Target::Users),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![text().prop_map(Body::Text), text().prop_map(Body::Action)]
}

fn attrs() -> impl Strategy<Value = Vec<MessageAttr>> {
    prop::collection::vec(
        prop_oneof![
            any::<u64>().prop_map(MessageAttr::ReplyTo),
            any::<u32>().prop_map(MessageAttr::ExpiresIn)
        ],
        0..3,
    )
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u16>(), text(), text(), prop::option::of(text())).prop_map(
            |(version, nick, client, password)| {
                ClientFrame::Hello(Hello {
                    version,
                    nick,
                    client,
                    password,
                })
            }
        ),
        (text(), text(), text()).prop_map(|(secret, peer_addr, relay)| {
            ClientFrame::RelayHello(RelayHello {
                secret,
                peer_addr,
                relay,
            })
        }),
        (any::<u64>(), target(), body(), attrs()).prop_map(|(tag, to, body, attrs)| {
            ClientFrame::Send(Outgoing {
                tag,
                to,
                body,
                attrs,
            })
        }),
        text().prop_map(|room| ClientFrame::Who { room }),
        any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
        text().prop_map(|reason| ClientFrame::Quit { reason }),
    ]
}

fn user() -> impl Strategy<Value = UserInfo> {
    (text(), any::<bool>()).prop_map(|(nick, relayed)| UserInfo { nick, relayed })
}

fn reason() -> impl Strategy<Value = DisconnectReason> {
    prop_oneof![
        Just(DisconnectReason::Quit),
        Just(DisconnectReason::ConnectionClosed),
        Just(DisconnectReason::ProtocolError),
        Just(DisconnectReason::Flooding),
        Just(DisconnectReason::SendQueueExceeded),
        Just(DisconnectReason::ServerShutdown),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (
            text(),
            text(),
            ts(),
            prop::collection::vec(user(), 0..5),
            any::<u32>()
        )
            .prop_map(|(nick, requested_nick, server_time, roster, n)| {
                ServerFrame::Welcome(Welcome {
                    version: 1,
                    server: "s".into(),
                    nick,
                    requested_nick,
                    nick_change: (n % 2 == 0).then_some(NickChange::Taken),
                    server_time,
                    room: "lobby".into(),
                    rooms: vec![RoomInfo {
                        name: "lobby".into(),
                        topic: String::new(),
                        members: n,
                    }],
                    roster,
                    limits: Limits {
                        max_frame: n,
                        max_message_len: n / 2,
                        max_targets: 16,
                        rate_burst: 10,
                        rate_interval_ms: 500,
                    },
                })
            }),
        (text(), any::<u16>()).prop_map(|(message, v)| ServerFrame::Rejected(Rejected {
            reason: RejectReason::VersionMismatch {
                client: v,
                server_min: 1,
                server_max: 1
            },
            message,
        })),
        (
            any::<u64>(),
            ts(),
            text(),
            target(),
            body(),
            attrs(),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(id, at, from, to, body, attrs, tag)| {
                ServerFrame::Message(ChatMessage {
                    id,
                    at,
                    from,
                    to,
                    body,
                    attrs,
                    tag,
                })
            }),
        (text(), user(), ts()).prop_map(|(room, user, at)| ServerFrame::Joined { room, user, at }),
        (text(), text(), reason(), text(), ts()).prop_map(|(room, nick, reason, message, at)| {
            ServerFrame::Left {
                room,
                nick,
                reason,
                message,
                at,
            }
        }),
        (text(), prop::collection::vec(user(), 0..5))
            .prop_map(|(room, users)| ServerFrame::Roster { room, users }),
        (
            prop::option::of(any::<u64>()),
            prop::collection::vec(text(), 0..3),
            text()
        )
            .prop_map(|(tag, nicks, message)| ServerFrame::Error(ErrorFrame {
                tag,
                code: ErrorCode::NoSuchUser(nicks),
                message
            })),
        (prop::option::of(any::<u64>()), any::<u32>()).prop_map(|(tag, retry_after_ms)| {
            ServerFrame::RateLimited {
                tag,
                retry_after_ms,
            }
        }),
        (any::<u64>(), ts())
            .prop_map(|(nonce, server_time)| ServerFrame::Pong { nonce, server_time }),
        (reason(), text()).prop_map(|(reason, message)| ServerFrame::Bye { reason, message }),
    ]
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = encode_frame(&frame, usize::MAX).expect("encode");
        let mut codec = FrameCodec::<ClientFrame, ()>::new(usize::MAX >> 1);
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(codec.decode(&mut buf).expect("decode"), Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = encode_frame(&frame, usize::MAX).expect("encode");
        prop_assert_eq!(decode_payload::<ServerFrame>(&bytes[4..]).expect("decode"), frame);
    }

    #[test]
    fn any_payload_decodes_or_errs_without_panicking(
        payload in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = decode_payload::<ClientFrame>(&payload);
        let _ = decode_payload::<ServerFrame>(&payload);
    }

    #[test]
    fn any_byte_stream_yields_frames_or_an_error(
        stream in prop::collection::vec(any::<u8>(), 0..1024)
    ) {
        let mut codec = FrameCodec::<ClientFrame, ()>::new(256);
        let mut buf = BytesMut::from(&stream[..]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    let _ = codec.decode_eof(&mut buf);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn valid_frames_split_anywhere_decode_the_same(
        frame in client_frame(),
        cut in any::<prop::sample::Index>()
    ) {
        let bytes = encode_frame(&frame, usize::MAX).expect("encode");
        let cut = cut.index(bytes.len() + 1);
        let mut codec = FrameCodec::<ClientFrame, ()>::new(usize::MAX >> 1);
        let mut buf = BytesMut::from(&bytes[..cut]);
        let first = codec.decode(&mut buf).expect("partial");
        buf.extend_from_slice(&bytes[cut..]);
        let got = match first {
            Some(f) => f,
            None => codec.decode(&mut buf).expect("rest").expect("complete"),
        };
        prop_assert_eq!(got, frame);
    }
}
