//! Checking one frame from an admitted client: the protocol, the rate limit and the limits on
//! what a frame may hold. Pure: it decides, and the read loop carries the decision out (a
//! reply to queue, a command for the hub, a password to hash, or the end of the connection).

use chat_core::frame::FrameError;
use chat_core::protocol::{ClientFrame, DisconnectReason, ErrorCode, ErrorFrame, ServerFrame};
use chrono::Utc;
use tokio::time::Instant;

use super::Shared;
use super::checks::*;
use super::read_loop::End;
use crate::config::Config;
use crate::hub::{Cmd, ConnId, Op};
use crate::limits::{Bucket, Presence};
use crate::ratelimit::{RateLimiter, Verdict};

/// A connection's flood control: its own bucket (an account's, kept from one login to the
/// next) and its address's, shared by every connection from there.
#[derive(Debug)]
pub(super) struct Flood {
    own: RateLimiter,
    /// File chunks and acknowledgements, in bytes per second: a bound on what a connection
    /// can make the hub handle, far above `--file-rate` (which the hub keeps by holding
    /// acknowledgements back): paced, not refused.
    files: Bucket,
    presence: Presence,
    /// The account logged in to, whose bucket is kept when the connection ends.
    account: Option<String>,
}

impl Flood {
    /// The flood control of a connection counted by `presence`, logged in to `account`.
    pub(super) fn new(shared: &Shared, presence: Presence, account: Option<String>) -> Self {
        let own = account
            .as_deref()
            .and_then(|a| presence.book().take_account(a))
            .unwrap_or_else(|| RateLimiter::new(shared.config.rate, Instant::now()));
        Flood {
            own,
            files: file_bucket(&shared.config),
            presence,
            account,
        }
    }

    /// A connection from an address that is not counted, with a fresh bucket.
    #[cfg(test)]
    pub(super) fn uncounted(
        config: &Config,
        book: std::sync::Arc<crate::limits::AddressBook>,
    ) -> Self {
        Flood {
            own: RateLimiter::new(config.rate, Instant::now()),
            files: file_bucket(config),
            presence: Presence::uncounted(book),
            account: None,
        }
    }

    /// The connection has ended: an account's bucket is kept for its next login.
    pub(super) fn park(self, shared: &Shared) {
        if let Some(account) = self.account {
            shared
                .addresses
                .park_account(account, self.own, Instant::now());
        }
    }

    /// Both buckets' decision about one frame at `now`: the connection's own first, then,
    /// for a frame it allows, the address's (a frame refused anyway takes nothing from the
    /// connection's neighbours).
    fn check(&mut self, now: Instant) -> Verdict {
        match self.own.check(now) {
            Verdict::Allow => self.presence.check_frame(now),
            refused => refused,
        }
    }
}

/// How far above `--file-rate` a connection's file frames are paced by its session: a sender
/// keeping to its window never is.
const FILE_FRAMES_FACTOR: u64 = 4;

/// The file rate the session's bound is taken from when `--file-rate` is 0 (no limit): file
/// frames are still bounded, at four times this.
const UNLIMITED_FILE_RATE: u64 = 250_000_000;

/// The bucket that paces a connection's file frames: a second's worth at once.
fn file_bucket(config: &Config) -> Bucket {
    let rate = config
        .files
        .rate
        .unwrap_or(UNLIMITED_FILE_RATE)
        .saturating_mul(FILE_FRAMES_FACTOR);
    let burst = u32::try_from(rate).unwrap_or(u32::MAX);
    Bucket::new(burst, rate as f64, Instant::now())
}

/// What an acknowledgement costs of the bound on file frames, in bytes: a chunk's worth, as
/// a client acknowledges each chunk, so that a flood of small acknowledgements (each handled
/// by the hub) is paced like the data it would stand for.
const ACK_COST: f64 = chat_core::protocol::FILE_CHUNK as f64;

/// What a file chunk costs at least of the bound on file frames, in bytes.
const MIN_CHUNK_COST: usize = 4096;

/// What the read loop does next with what it read.
#[derive(Debug)]
pub(super) enum Step {
    /// Nothing more.
    Next,
    /// Answer the client directly (an error, a pong), and nothing more.
    Reply(ServerFrame),
    /// Refused by the rate limiter: answered, counted, and the hub told when this refusal
    /// starts a mute.
    Limited {
        answer: ServerFrame,
        mute: Option<Cmd>,
    },
    /// Hand this to the hub.
    Hub(Cmd),
    /// Hand this to the hub after `wait` (a file chunk over the file rate).
    Paced { cmd: Cmd, wait: std::time::Duration },
    /// The connection ends.
    End(End),
    /// Hash this password (off the connection's task), then hand it to the hub.
    Hash(HashFor, String),
}

/// What a password is hashed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HashFor {
    Register,
    SetPassword,
}

/// Checks one read result against the protocol, the rate limits (at `now`) and `config`'s
/// limits, for connection `conn` speaking protocol `version`.
pub(super) fn step(
    read: Result<Option<ClientFrame>, FrameError>,
    conn: ConnId,
    version: u16,
    config: &Config,
    flood: &mut Flood,
    now: Instant,
) -> Step {
    let frame = match read {
        Ok(Some(frame)) => frame,
        Ok(None) => return leave(DisconnectReason::ConnectionClosed, "connection closed"),
        Err(e) if e.is_protocol_violation() => {
            return leave(DisconnectReason::ProtocolError, e.to_string());
        }
        Err(e) => return leave(DisconnectReason::ConnectionClosed, e.to_string()),
    };
    if let ClientFrame::Quit { reason } = frame {
        return leave(DisconnectReason::Quit, clean_quit_message(&reason));
    }
    // Keep-alives have an allowance of their own, outside the message limit: a client that
    // was rate-limited still gets its pings answered, and does not take the server for dead.
    if matches!(frame, ClientFrame::Ping { .. }) && flood.own.ping(now) {
        return command(frame, conn, config, now);
    }
    // File data and acknowledgements are paced by the file rate instead of counting as
    // messages: a transfer would otherwise use up the message allowance in a moment.
    if let ClientFrame::FileChunk { data, .. } = &frame
        && version >= 5
    {
        // Every chunk costs at least a few kilobytes, so that empty ones are no way around.
        let cost = data.len().max(MIN_CHUNK_COST) as f64;
        return paced(flood, cost, Cmd::File { conn, frame }, now);
    }
    if matches!(frame, ClientFrame::FileAck { .. }) && version >= 5 {
        return paced(flood, ACK_COST, Cmd::File { conn, frame }, now);
    }
    let tag = match &frame {
        ClientFrame::Send(out) => Some(out.tag),
        ClientFrame::FileOffer { tag, .. } => Some(*tag),
        _ => None,
    };
    match flood.check(now) {
        Verdict::Allow => {}
        Verdict::Refuse { retry_after, first } => {
            let retry_after_ms = u32::try_from(retry_after.as_millis()).unwrap_or(u32::MAX);
            let mute = first.then_some(Cmd::RateLimited {
                conn,
                retry_after_ms: u64::from(retry_after_ms),
            });
            let answer = ServerFrame::RateLimited {
                tag,
                retry_after_ms,
            };
            return Step::Limited { answer, mute };
        }
        Verdict::Kick => {
            return leave(
                DisconnectReason::Flooding,
                "disconnected for flooding: kept sending while rate-limited",
            );
        }
    }
    // A frame of a later version than this connection's is answered, not acted on: the
    // answers to it would be frames the client cannot decode.
    if frame.since_version() > version {
        return error(
            tag,
            ErrorCode::Unsupported,
            format!(
                "that request needs protocol version {}; this connection speaks version \
                 {version}",
                frame.since_version()
            ),
        );
    }
    if matches!(frame, ClientFrame::Register { .. })
        && let Err(wait) = flood.presence.register(now)
    {
        return error(
            None,
            ErrorCode::NotAllowed,
            format!(
                "too many accounts were registered from your address: try again in {} min",
                wait.as_secs().div_ceil(60)
            ),
        );
    }
    command(frame, conn, config, now)
}

/// What an allowed frame, read at `now`, asks for.
fn command(frame: ClientFrame, conn: ConnId, config: &Config, now: Instant) -> Step {
    match frame {
        ClientFrame::Send(msg) => match check_outgoing(&msg, config) {
            Ok(()) => Step::Hub(Cmd::Send {
                conn,
                msg,
                arrived: now,
            }),
            Err(err) => Step::Reply(ServerFrame::Error(err)),
        },
        ClientFrame::Who { room } => Step::Hub(Cmd::Who { conn, room }),
        ClientFrame::Ping { nonce } => Step::Reply(ServerFrame::Pong {
            nonce,
            server_time: Utc::now(),
        }),
        ClientFrame::Hello(_) | ClientFrame::RelayHello(_) => leave(
            DisconnectReason::ProtocolError,
            "the handshake was already done; Hello may be sent only once",
        ),
        ClientFrame::Quit { .. } => Step::Next,
        ClientFrame::Join { room } => Step::Hub(Cmd::EnterRoom { conn, room }),
        ClientFrame::Part { room } => Step::Hub(Cmd::PartRoom { conn, room }),
        ClientFrame::ListRooms => Step::Hub(Cmd::ListRooms { conn }),
        ClientFrame::SetTopic { room, topic } => match check_topic(&topic) {
            Ok(()) => Step::Hub(Cmd::SetTopic { conn, room, topic }),
            Err(message) => error(
                None,
                ErrorCode::InvalidText,
                format!("invalid topic: {message}"),
            ),
        },
        ClientFrame::History {
            room,
            before,
            limit,
        } => Step::Hub(Cmd::History {
            conn,
            room,
            before,
            limit,
        }),
        ClientFrame::PrivateHistory {
            with,
            before,
            limit,
        } => match check_conversation(&with, config) {
            Ok(()) => Step::Hub(Cmd::PrivateHistory {
                conn,
                with,
                before,
                limit,
            }),
            Err((code, message)) => error(None, code, message),
        },
        ClientFrame::Search {
            pattern,
            before,
            limit,
        } => match crate::search::Query::parse(&pattern) {
            Ok(query) => Step::Hub(Cmd::Search {
                conn,
                query: Box::new(query),
                before,
                limit,
            }),
            Err(message) => error(None, ErrorCode::InvalidText, message),
        },
        ClientFrame::Mentions { before, limit } => Step::Hub(Cmd::Mentions {
            conn,
            before,
            limit,
        }),
        ClientFrame::Register { mut password } => {
            Step::Hash(HashFor::Register, std::mem::take(&mut password.0))
        }
        ClientFrame::SetPassword { mut password } => {
            Step::Hash(HashFor::SetPassword, std::mem::take(&mut password.0))
        }
        ClientFrame::AckOffline { up_to } => Step::Hub(Cmd::AckOffline { conn, up_to }),
        ClientFrame::FileOffer {
            tag,
            ref to,
            ref name,
            ..
        } => match check_file_offer(to, name) {
            Ok(()) => Step::Hub(Cmd::File { conn, frame }),
            Err(message) => error(Some(tag), ErrorCode::InvalidText, message),
        },
        ClientFrame::FileCancel { ref reason, .. } => match check_topic(reason) {
            Ok(()) => Step::Hub(Cmd::File { conn, frame }),
            Err(e) => error(None, ErrorCode::InvalidText, format!("invalid reason: {e}")),
        },
        ClientFrame::FileAnswer { .. }
        | ClientFrame::FileChunk { .. }
        | ClientFrame::FileAck { .. }
        | ClientFrame::FileDone { .. } => Step::Hub(Cmd::File { conn, frame }),
        ClientFrame::Edit { id, text } => {
            let checked = check_text(&text, config).map_err(|(code, e)| (code, e.to_string()));
            match checked {
                Ok(()) => Step::Hub(Cmd::MessageOp {
                    conn,
                    id,
                    op: Op::Edit(text),
                }),
                Err((code, message)) => error(None, code, message),
            }
        }
        ClientFrame::React { id, emoji } => match check_reaction(&emoji) {
            Ok(()) => Step::Hub(Cmd::MessageOp {
                conn,
                id,
                op: Op::React(emoji),
            }),
            Err(message) => error(None, ErrorCode::InvalidText, message),
        },
        frame => match check_moderation(&frame) {
            Ok(()) => Step::Hub(Cmd::Moderate { conn, frame }),
            Err(message) => error(None, ErrorCode::InvalidText, message),
        },
    }
}

/// A file chunk or acknowledgement of `cost` bytes, paced by the file rate.
fn paced(flood: &mut Flood, cost: f64, cmd: Cmd, now: Instant) -> Step {
    match flood.files.pace(cost, now) {
        wait if wait.is_zero() => Step::Hub(cmd),
        wait => Step::Paced { cmd, wait },
    }
}

fn leave(reason: DisconnectReason, message: impl Into<String>) -> Step {
    Step::End(End::Leave(reason, message.into()))
}

fn error(tag: Option<u64>, code: ErrorCode, message: String) -> Step {
    Step::Reply(ServerFrame::Error(ErrorFrame { tag, code, message }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chat_core::protocol::{Body, MessageAttr, Outgoing, Password, RelayHello, Target};

    use super::*;
    use crate::ratelimit::RateConfig;

    fn book(config: &Config) -> std::sync::Arc<crate::limits::AddressBook> {
        std::sync::Arc::new(crate::limits::AddressBook::new(
            config.limits.clone(),
            config.rate,
        ))
    }

    fn run(frame: ClientFrame, version: u16) -> Step {
        let config = Config::default();
        let mut flood = Flood::uncounted(&config, book(&config));
        step(
            Ok(Some(frame)),
            7,
            version,
            &config,
            &mut flood,
            Instant::now(),
        )
    }

    fn say(text: &str, to: Target) -> ClientFrame {
        ClientFrame::Send(Outgoing {
            tag: 5,
            to,
            body: Body::Text(text.into()),
            attrs: Vec::new(),
        })
    }

    fn error_code(step: Step) -> ErrorCode {
        match step {
            Step::Reply(ServerFrame::Error(e)) => e.code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_message_goes_to_the_hub_and_a_bad_one_is_answered() {
        let lobby = || Target::Room("lobby".into());
        assert!(matches!(
            run(say("hi", lobby()), 2),
            Step::Hub(Cmd::Send { conn: 7, .. })
        ));
        let long = "x".repeat(Config::default().max_message_len + 1);
        assert!(matches!(
            error_code(run(say(&long, lobby()), 2)),
            ErrorCode::MessageTooLong { .. }
        ));
        assert_eq!(
            error_code(run(say("hi\u{7}", lobby()), 2)),
            ErrorCode::InvalidText
        );
        assert!(matches!(
            error_code(run(say("hi", Target::Users(Vec::new())), 2)),
            ErrorCode::BadTargets { .. }
        ));
        let mut many = say("hi", lobby());
        if let ClientFrame::Send(m) = &mut many {
            m.attrs = vec![MessageAttr::ExpiresIn(1); MAX_ATTRS + 1];
        }
        assert_eq!(error_code(run(many, 2)), ErrorCode::Unsupported);
    }

    #[test]
    fn a_later_version_s_request_is_answered_not_acted_on() {
        let join = || ClientFrame::Join {
            room: "rust".into(),
        };
        assert_eq!(error_code(run(join(), 1)), ErrorCode::Unsupported);
        assert!(matches!(run(join(), 2), Step::Hub(Cmd::EnterRoom { .. })));
    }

    #[test]
    fn passwords_are_hashed_before_the_hub_sees_them() {
        let register = ClientFrame::Register {
            password: Password("s3cret-pw".into()),
        };
        match run(register, 2) {
            Step::Hash(HashFor::Register, p) => assert_eq!(p, "s3cret-pw"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quit_hello_and_topics() {
        match run(
            ClientFrame::Quit {
                reason: format!("bye\u{1b}[2J{}", "é".repeat(200)),
            },
            2,
        ) {
            Step::End(End::Leave(DisconnectReason::Quit, m)) => {
                assert!(
                    m.starts_with("bye[2J") && m.len() <= MAX_QUIT_MESSAGE,
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        let relay = ClientFrame::RelayHello(RelayHello {
            secret: "s".into(),
            peer_addr: "127.0.0.1:1".into(),
            relay: "test".into(),
        });
        assert!(matches!(
            run(relay, 2),
            Step::End(End::Leave(DisconnectReason::ProtocolError, _))
        ));
        let topic = |topic: &str| ClientFrame::SetTopic {
            room: "rust".into(),
            topic: topic.into(),
        };
        assert_eq!(error_code(run(topic("a\nb"), 2)), ErrorCode::InvalidText);
        assert!(matches!(run(topic(""), 2), Step::Hub(Cmd::SetTopic { .. })));
        assert!(matches!(
            run(ClientFrame::Ping { nonce: 3 }, 2),
            Step::Reply(ServerFrame::Pong { nonce: 3, .. })
        ));
    }

    #[test]
    fn over_the_rate_limit_the_first_refusal_mutes_and_flooding_ends() {
        let config = Config {
            rate: RateConfig {
                burst: 1,
                per_sec: 1.0,
                mute: Duration::from_secs(5),
                kick_after: 2,
            },
            ..Config::default()
        };
        let now = Instant::now();
        let mut flood = Flood::uncounted(&config, book(&config));
        let mut next = || {
            let frame = say("hi", Target::Room("lobby".into()));
            step(Ok(Some(frame)), 7, 2, &config, &mut flood, now)
        };
        assert!(matches!(next(), Step::Hub(_)));
        assert!(matches!(
            next(),
            Step::Limited {
                answer: ServerFrame::RateLimited { tag: Some(5), .. },
                mute: Some(Cmd::RateLimited { conn: 7, .. }),
            }
        ));
        assert!(matches!(next(), Step::Limited { mute: None, .. }));
        let mut ended = false;
        for _ in 0..4 {
            if let Step::End(End::Leave(DisconnectReason::Flooding, _)) = next() {
                ended = true;
                break;
            }
        }
        assert!(ended, "flooding while muted ends the connection");
    }

    #[test]
    fn a_closed_or_broken_connection_ends() {
        let config = Config::default();
        let mut flood = Flood::uncounted(&config, book(&config));
        let now = Instant::now();
        assert!(matches!(
            step(Ok(None), 1, 2, &config, &mut flood, now),
            Step::End(End::Leave(DisconnectReason::ConnectionClosed, _))
        ));
        let too_large = Err(FrameError::TooLarge { len: 9, max: 8 });
        assert!(matches!(
            step(too_large, 1, 2, &config, &mut flood, now),
            Step::End(End::Leave(DisconnectReason::ProtocolError, _))
        ));
    }

    #[test]
    fn file_frames_skip_the_message_limit_but_a_flood_of_them_is_paced() {
        let mut config = Config::default();
        config.rate.burst = 1;
        config.files.rate = Some(1_000_000);
        let mut flood = Flood::uncounted(&config, book(&config));
        let now = Instant::now();
        let mut ack = |received| {
            let frame = ClientFrame::FileAck { id: 1, received };
            step(Ok(Some(frame)), 7, 5, &config, &mut flood, now)
        };
        // Four megabytes at once (four times the file rate): 122 acknowledgements of a chunk's
        // worth each, far past the message limit of one.
        for i in 0..122 {
            assert!(matches!(ack(i), Step::Hub(Cmd::File { .. })), "ack {i}");
        }
        let Step::Paced { wait, .. } = ack(122) else {
            panic!("the 123rd acknowledgement at once is paced");
        };
        assert!(wait > std::time::Duration::ZERO);
        // A protocol 4 connection does not get file frames through at all.
        let frame = ClientFrame::FileAck { id: 1, received: 0 };
        let old = step(Ok(Some(frame)), 7, 4, &config, &mut flood, now);
        assert!(!matches!(old, Step::Hub(_) | Step::Paced { .. }), "{old:?}");
    }
}
