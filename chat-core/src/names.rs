//! Nickname, room-name and message-text rules: the one place that decides what is allowed.
//!
//! Nicknames follow RFC 8266 (the PRECIS nickname profile: its character class, and written in
//! the form its enforcement gives, so `ａｌｉｃｅ` is written `alice`), with stricter rules for a
//! chat where people must not pass for one another: no spaces, no character that shows as
//! nothing, a letter, digit or `_` first (so nothing that looks like a relayed guest's `*`),
//! and uniqueness decided on look-alike keys ([`NickKeys`]: case, UTS #39 confusables, marks,
//! and the letter pairs that read as one letter, such as `rn` and `m`).

use precis_core::profile::Profile;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Most characters in a nickname (the relay's `*` included).
pub const MAX_NICK_CHARS: usize = 32;
/// Most characters in a room name.
pub const MAX_ROOM_CHARS: usize = 32;
/// Most bytes in a client software name.
pub const MAX_CLIENT_NAME: usize = 64;
/// The prefix that marks guests connected through a relay.
pub const RELAY_PREFIX: char = '*';
/// Characters a nickname may not start with.
pub const RESERVED_FIRST: [char; 3] = ['*', '#', '@'];

/// A rule a nickname breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NickError {
    /// Empty nickname.
    #[error("a nickname must not be empty")]
    Empty,
    /// More than [`MAX_NICK_CHARS`] characters.
    #[error("a nickname is at most {max} characters long (this one has {len})")]
    TooLong {
        /// The limit.
        max: u32,
        /// The length given.
        len: u32,
    },
    /// Contains whitespace.
    #[error("a nickname must not contain spaces or other whitespace")]
    Whitespace,
    /// Contains a control or invisible formatting character.
    #[error("a nickname must not contain control or invisible characters")]
    Invisible,
    /// Contains a comma (it separates several recipients in `/msg a,b`).
    #[error("a nickname must not contain ','")]
    Comma,
    /// Starts with a reserved character.
    #[error(
        "a nickname must not start with '{0}' or a look-alike \
         ('*' marks relayed guests, '#' rooms, '@' operators)"
    )]
    ReservedStart(char),
    /// A nickname presented through a relay lacks the `*` prefix.
    #[error("a relayed guest's nickname must start with '*'")]
    MissingRelayPrefix,
    /// Starts with something other than a letter, a digit or `_`. Since protocol version 3.
    #[error("a nickname must start with a letter, a digit or '_' (not '{0}')")]
    BadStart(char),
    /// Not written the way RFC 8266 writes it (fullwidth letters, compatibility forms).
    /// Since protocol version 3.
    #[error("a nickname must be written in its normal form: {normal:?}")]
    NotNormalized {
        /// The same nickname in its normal form.
        normal: String,
    },
    /// Contains a character RFC 8266 does not allow in nicknames (unassigned, private use,
    /// old Hangul jamo, ...). Since protocol version 3.
    #[error("a nickname must not contain '{}' (U+{:04X})", .0.escape_unicode(), *.0 as u32)]
    Disallowed(char),
}

impl NickError {
    /// This error as a peer speaking protocol `version` can decode it: the rules added in
    /// version 3 reach older peers as the nearest older rule (the message, sent beside it,
    /// still names the real one).
    pub fn for_version(self, version: u16) -> NickError {
        match self {
            NickError::BadStart(c) if version < 3 => NickError::ReservedStart(c),
            NickError::NotNormalized { .. } | NickError::Disallowed(_) if version < 3 => {
                NickError::Invisible
            }
            other => other,
        }
    }
}

/// Checks a nickname a client asks for directly (not through a relay).
pub fn validate_nick(nick: &str) -> Result<(), NickError> {
    if let Some(reserved) = reserved_start(nick) {
        return Err(NickError::ReservedStart(reserved));
    }
    validate_body(nick)?;
    match nick.chars().next() {
        Some(c) if c.is_alphanumeric() || c == '_' => Ok(()),
        Some(c) => Err(NickError::BadStart(c)),
        None => Err(NickError::Empty),
    }
}

/// The reserved character `nick` starts with, as written, once folded (fullwidth `＊` is
/// `*`), or as its look-alike skeleton (`﹡`, `⁎`).
fn reserved_start(nick: &str) -> Option<char> {
    let candidates = [
        nick.chars().next(),
        fold(nick).chars().next(),
        unicode_security::skeleton(nick).next(),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|c| RESERVED_FIRST.contains(c))
}

/// Checks a nickname presented through a relay: `*` followed by a valid nickname, 32
/// characters in all.
pub fn validate_relayed_nick(nick: &str) -> Result<(), NickError> {
    match nick.strip_prefix(RELAY_PREFIX) {
        Some(rest) => {
            validate_nick(rest)?;
            validate_body(nick)
        }
        None => Err(NickError::MissingRelayPrefix),
    }
}

/// The nickname a relay presents for a guest who asked for `requested`: the `*` prefix is
/// added unless already there, and the result must satisfy [`validate_relayed_nick`].
pub fn relayed_nick(requested: &str) -> Result<String, NickError> {
    let nick = if requested.starts_with(RELAY_PREFIX) {
        requested.to_owned()
    } else {
        format!("{RELAY_PREFIX}{requested}")
    };
    validate_relayed_nick(&nick)?;
    Ok(nick)
}

fn validate_body(nick: &str) -> Result<(), NickError> {
    if nick.is_empty() {
        return Err(NickError::Empty);
    }
    let len = nick.chars().count();
    if len > MAX_NICK_CHARS {
        return Err(NickError::TooLong {
            max: MAX_NICK_CHARS as u32,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        });
    }
    for c in nick.chars() {
        if c.is_whitespace() {
            return Err(NickError::Whitespace);
        }
        if c.is_control() || is_invisible(c) {
            return Err(NickError::Invisible);
        }
        if c == ',' {
            return Err(NickError::Comma);
        }
    }
    match precis_profiles::Nickname::new().enforce(nick) {
        Ok(normal) if normal == nick => Ok(()),
        Ok(normal) => Err(NickError::NotNormalized {
            normal: normal.into_owned(),
        }),
        Err(_) => {
            let bad = nick
                .chars()
                .find(|c| {
                    precis_profiles::Nickname::new()
                        .prepare(c.to_string())
                        .is_err()
                })
                .unwrap_or('\u{FFFD}');
            Err(NickError::Disallowed(bad))
        }
    }
}

/// Default-ignorable and bidirectional-control code points: they render as nothing and would
/// let two different nicknames look identical.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D159}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The keys on which nickname uniqueness is decided: two nicknames may not be online together
/// if any key of one equals the same key of the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NickKeys {
    /// Case-folded form (NFKC, then lowercase): `Alice` and `alice` share it.
    pub folded: String,
    /// Look-alike key of the folded form (see [`look_alike`]): `alice` and `аlice` (Cyrillic
    /// а), `ALİCE` and `alice`, `vv` and `w` share it, whatever their case.
    pub skeleton: String,
    /// Look-alike key of the nickname as written, then folded: catches look-alikes that only
    /// exist in one case, such as `AIice` (capital i) and `Alice`.
    pub cased_skeleton: String,
}

impl NickKeys {
    /// The keys, each paired with its kind so that keys of different kinds never collide.
    pub fn tagged(&self) -> [(u8, &str); 3] {
        [
            (0, &self.folded),
            (1, &self.skeleton),
            (2, &self.cased_skeleton),
        ]
    }
}

/// Computes the uniqueness keys of a nickname.
pub fn nick_keys(nick: &str) -> NickKeys {
    let folded = fold(nick);
    let skeleton = look_alike(&folded);
    let cased_skeleton = look_alike(nick);
    NickKeys {
        folded,
        skeleton,
        cased_skeleton,
    }
}

/// What a nickname looks like, as a key: marks removed (`İ` reads as `I`, `é` as `e`), the
/// UTS #39 skeleton (`а` Cyrillic reads as `a`, `1` and `I` as `l`, `m` as `rn`), folded, and
/// the letter pairs that read as one letter merged (`vv` as `w`, `cl` as `d`).
fn look_alike(nick: &str) -> String {
    let unmarked: String = nick.nfd().filter(|&c| !is_combining_mark(c)).collect();
    let skeleton = fold(&unicode_security::skeleton(&unmarked).collect::<String>());
    skeleton.replace("vv", "w").replace("cl", "d")
}

/// Case-folds a nickname for lookups (`/msg ALICE` reaches `alice`).
pub fn fold(s: &str) -> String {
    s.nfkc().flat_map(char::to_lowercase).collect()
}

/// A private conversation's key, for clients that keep something per conversation: its
/// people's folded nicknames, sorted, after an `@` (which no room name has, so that rooms and
/// conversations can share a map).
pub fn conversation_key(people: &[String]) -> String {
    let mut keys: Vec<String> = people.iter().map(|n| fold(n)).collect();
    keys.sort_unstable();
    format!("@{}", keys.join(","))
}

/// A rule a room name breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RoomError {
    /// Empty name.
    #[error("a room name must not be empty")]
    Empty,
    /// Too long.
    #[error("a room name is at most {max} characters long")]
    TooLong {
        /// The limit.
        max: u32,
    },
    /// A character other than letters, digits, `-`, `_` and `.`.
    #[error("a room name may contain only letters, digits, '-', '_' and '.'")]
    BadChar,
}

/// Checks a room name (given without its optional leading `#`).
pub fn validate_room(name: &str) -> Result<(), RoomError> {
    if name.is_empty() {
        return Err(RoomError::Empty);
    }
    if name.chars().count() > MAX_ROOM_CHARS {
        return Err(RoomError::TooLong {
            max: MAX_ROOM_CHARS as u32,
        });
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(RoomError::BadChar);
    }
    Ok(())
}

/// A rule a message text breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing but whitespace.
    #[error("the message is empty")]
    Empty,
    /// Longer than the limit.
    #[error("the message is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Contains a control character other than newline and tab.
    #[error("the message contains a control character (only newline and tab are allowed)")]
    Control,
}

/// Checks a message text: not blank, at most `max` bytes, and no control characters except
/// newline and tab (so nobody can send terminal escape sequences to others).
pub fn validate_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong {
            len: text.len(),
            max,
        });
    }
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(TextError::Control);
    }
    Ok(())
}

/// Checks a client software name: at most [`MAX_CLIENT_NAME`] bytes, no control characters.
pub fn validate_client_name(name: &str) -> bool {
    name.len() <= MAX_CLIENT_NAME && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_nicknames() {
        for nick in [
            "alice",
            "Bob_2",
            "ça-va",
            "日本",
            "x",
            "a".repeat(32).as_str(),
            "crab😀",
            "_zed_",
            "ΑΘΗΝΑ",
        ] {
            assert_eq!(validate_nick(nick), Ok(()), "{nick}");
        }
    }

    #[test]
    fn refuses_each_rule() {
        assert_eq!(validate_nick(""), Err(NickError::Empty));
        assert_eq!(
            validate_nick(&"a".repeat(33)),
            Err(NickError::TooLong { max: 32, len: 33 })
        );
        assert_eq!(validate_nick("al ice"), Err(NickError::Whitespace));
        assert_eq!(validate_nick("al\u{3000}ice"), Err(NickError::Whitespace));
        assert_eq!(validate_nick("al\tice"), Err(NickError::Whitespace));
        assert_eq!(validate_nick("al\u{1b}ice"), Err(NickError::Invisible));
        assert_eq!(validate_nick("al\u{200b}ice"), Err(NickError::Invisible));
        assert_eq!(validate_nick("al\u{202e}ice"), Err(NickError::Invisible));
        assert_eq!(validate_nick("a,b"), Err(NickError::Comma));
        for c in RESERVED_FIRST {
            assert_eq!(
                validate_nick(&format!("{c}x")),
                Err(NickError::ReservedStart(c))
            );
        }
        assert_eq!(validate_nick("x*"), Ok(()));
        for lookalike in [
            "\u{FF0A}alice",
            "\u{FE61}alice",
            "\u{FF03}room",
            "\u{FF20}op",
        ] {
            assert!(
                matches!(validate_nick(lookalike), Err(NickError::ReservedStart(_))),
                "{lookalike}"
            );
        }
    }

    #[test]
    fn relayed_nicknames() {
        assert_eq!(relayed_nick("alice").as_deref(), Ok("*alice"));
        assert_eq!(relayed_nick("*alice").as_deref(), Ok("*alice"));
        assert_eq!(relayed_nick("**alice"), Err(NickError::ReservedStart('*')));
        assert_eq!(relayed_nick("#x"), Err(NickError::ReservedStart('#')));
        assert_eq!(
            relayed_nick(&"a".repeat(32)),
            Err(NickError::TooLong { max: 32, len: 33 })
        );
        assert_eq!(
            validate_relayed_nick("alice"),
            Err(NickError::MissingRelayPrefix)
        );
        assert_eq!(validate_relayed_nick("*"), Err(NickError::Empty));
    }

    #[test]
    fn case_and_look_alike_keys() {
        assert_eq!(nick_keys("Alice").folded, nick_keys("alice").folded);
        let cyrillic = "\u{0430}lice";
        assert_ne!(nick_keys(cyrillic).folded, nick_keys("alice").folded);
        assert_eq!(nick_keys(cyrillic).skeleton, nick_keys("alice").skeleton);
        assert_eq!(
            nick_keys("AIice").cased_skeleton,
            nick_keys("Alice").cased_skeleton
        );
        assert_eq!(
            nick_keys("\u{0410}LICE").skeleton,
            nick_keys("alice").skeleton
        );
        assert_eq!(nick_keys("ｂｏｂ").folded, nick_keys("bob").folded);
        assert_ne!(nick_keys("alice").skeleton, nick_keys("alicia").skeleton);
        // Marks, and pairs of letters that read as one.
        for (a, b) in [
            ("ALİCE", "alice"),
            ("café", "cafe"),
            ("vv", "w"),
            ("cl", "d"),
        ] {
            let (a, b) = (nick_keys(a), nick_keys(b));
            assert!(a.skeleton == b.skeleton || a.cased_skeleton == b.cased_skeleton);
        }
        assert_eq!(
            nick_keys("rnallory").skeleton,
            nick_keys("mallory").skeleton
        );
    }

    #[test]
    fn rfc_8266_and_what_shows_as_nothing() {
        // Shows as nothing, alone or after a name.
        assert_eq!(validate_nick("bob\u{2800}"), Err(NickError::Invisible));
        assert_eq!(validate_nick("\u{2800}"), Err(NickError::Invisible));
        assert_eq!(validate_nick("\u{3164}"), Err(NickError::Invisible));
        // Star-like symbols, and anything but a letter, digit or '_', cannot come first.
        for fake in [
            "✱zed", "⋆zed", "꙳zed", "★zed", "✳zed", "❉zed", "※zed", "-zed", ".zed",
        ] {
            let first = fake.chars().next().expect("first");
            assert!(
                matches!(
                    validate_nick(fake),
                    Err(NickError::BadStart(c) | NickError::ReservedStart(c)) if c == first || c == '*'
                ),
                "{fake}: {:?}",
                validate_nick(fake)
            );
        }
        assert_eq!(validate_nick("_zed"), Ok(()));
        assert_eq!(validate_nick("zed✱"), Ok(()));
        // Written in its normal form.
        assert_eq!(
            validate_nick("ａｌｉｃｅ"),
            Err(NickError::NotNormalized {
                normal: "alice".into()
            })
        );
        // Outside RFC 8266's class: private use, and characters its tables (Unicode 6.3)
        // do not have yet.
        assert!(matches!(
            validate_nick("crab\u{1F980}"),
            Err(NickError::Disallowed('\u{1F980}'))
        ));
        assert!(matches!(
            validate_nick("a\u{E000}"),
            Err(NickError::Disallowed('\u{E000}'))
        ));
        // Older peers get a rule they know; the message still says the real one.
        assert_eq!(
            NickError::BadStart('✱').for_version(2),
            NickError::ReservedStart('✱')
        );
        assert_eq!(
            NickError::Disallowed('x').for_version(2),
            NickError::Invisible
        );
        assert_eq!(NickError::Empty.for_version(2), NickError::Empty);
    }

    #[test]
    fn text_rules() {
        assert_eq!(validate_text("hi", 10), Ok(()));
        assert_eq!(validate_text("two\nlines\tok", 100), Ok(()));
        assert_eq!(validate_text("  \n", 10), Err(TextError::Empty));
        assert_eq!(validate_text("\u{1b}[2J", 10), Err(TextError::Control));
        assert_eq!(
            validate_text("héllo", 5),
            Err(TextError::TooLong { len: 6, max: 5 })
        );
    }

    #[test]
    fn room_rules() {
        assert_eq!(validate_room("lobby"), Ok(()));
        assert_eq!(validate_room("rust-lang.de"), Ok(()));
        assert_eq!(validate_room(""), Err(RoomError::Empty));
        assert_eq!(validate_room("a b"), Err(RoomError::BadChar));
    }
}
