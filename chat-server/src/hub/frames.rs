//! Message frames encoded straight from the shared message records, so that no copy of a
//! message is made to send it: the broadcast and the sender's echo (the same record with the
//! sender's tag), and a room's recent messages as `History`. The bytes are exactly those of
//! the owned [`ServerFrame`](chat_core::protocol::ServerFrame) variants (checked by the tests
//! below).

use chat_core::protocol::ChatMessage;
use serde::ser::{SerializeSeq, SerializeStruct, SerializeStructVariant};
use serde::{Serialize, Serializer};

use crate::event::SharedMessage;

/// The positions of the variants in `ServerFrame` (the tests check them).
const MESSAGE_VARIANT: u32 = 2;
const HISTORY_VARIANT: u32 = 14;

/// `ServerFrame::Message` for a message, with `tag` in place of the record's own (the
/// sender's echo carries its tag; everyone else's copy carries none).
#[derive(Debug)]
pub(super) struct MessageFrame<'a> {
    pub message: &'a ChatMessage,
    pub tag: Option<u64>,
}

impl Serialize for MessageFrame<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_variant("ServerFrame", MESSAGE_VARIANT, "Message", &Tagged(self))
    }
}

/// A `ChatMessage` with the tag of a [`MessageFrame`].
struct Tagged<'a>(&'a MessageFrame<'a>);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0.message;
        let mut st = s.serialize_struct("ChatMessage", 7)?;
        st.serialize_field("id", &m.id)?;
        st.serialize_field("at", &m.at.timestamp_millis())?;
        st.serialize_field("from", &m.from)?;
        st.serialize_field("to", &m.to)?;
        st.serialize_field("body", &m.body)?;
        st.serialize_field("attrs", &m.attrs)?;
        st.serialize_field("tag", &self.0.tag)?;
        st.end()
    }
}

/// `ServerFrame::History` of shared records.
#[derive(Debug)]
pub(super) struct HistoryFrame<'a, I> {
    pub room: &'a str,
    pub messages: I,
    pub more: bool,
}

impl<'a, I> Serialize for HistoryFrame<'a, I>
where
    I: Iterator<Item = &'a SharedMessage> + ExactSizeIterator + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct_variant("ServerFrame", HISTORY_VARIANT, "History", 3)?;
        st.serialize_field("room", self.room)?;
        st.serialize_field("messages", &Messages(self.messages.clone()))?;
        st.serialize_field("more", &self.more)?;
        st.end()
    }
}

/// A sequence of shared records, serialized as `Vec<ChatMessage>`.
struct Messages<I>(I);

impl<'a, I> Serialize for Messages<I>
where
    I: Iterator<Item = &'a SharedMessage> + ExactSizeIterator + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for m in self.0.clone() {
            seq.serialize_element(&**m)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chat_core::frame::encode_frame;
    use chat_core::protocol::{Body, MAX_SERVER_FRAME, MessageAttr, ServerFrame, Target};

    use super::*;

    fn message(id: u64, text: &str) -> ChatMessage {
        ChatMessage {
            id,
            at: chrono::Utc::now(),
            from: "alice".into(),
            to: Target::Users(vec!["bob".into(), "Ünïcødé".into()]),
            body: Body::Action(text.into()),
            attrs: vec![MessageAttr::ReplyTo(3), MessageAttr::ExpiresIn(60)],
            tag: None,
        }
    }

    #[test]
    fn a_message_encodes_exactly_like_the_owned_frame_with_or_without_a_tag() {
        let m = message(42, "waves");
        for tag in [None, Some(7), Some(u64::MAX)] {
            let mut owned = m.clone();
            owned.tag = tag;
            let expected = encode_frame(&ServerFrame::Message(owned), MAX_SERVER_FRAME);
            let got = encode_frame(&MessageFrame { message: &m, tag }, MAX_SERVER_FRAME);
            assert_eq!(got.expect("encode"), expected.expect("encode"));
        }
    }

    #[test]
    fn a_history_encodes_exactly_like_the_owned_frame() {
        let records: Vec<SharedMessage> = (1..4)
            .map(|i| Arc::new(message(i, &"x".repeat(i as usize * 100))))
            .collect();
        for more in [false, true] {
            let owned = ServerFrame::History {
                room: "rust".into(),
                messages: records.iter().map(|m| (**m).clone()).collect(),
                more,
            };
            let frame = HistoryFrame {
                room: "rust",
                messages: records.iter(),
                more,
            };
            assert_eq!(
                encode_frame(&frame, MAX_SERVER_FRAME).expect("encode"),
                encode_frame(&owned, MAX_SERVER_FRAME).expect("encode")
            );
        }
        let empty: Vec<SharedMessage> = Vec::new();
        let frame = HistoryFrame {
            room: "x",
            messages: empty.iter(),
            more: false,
        };
        let owned = ServerFrame::History {
            room: "x".into(),
            messages: Vec::new(),
            more: false,
        };
        assert_eq!(
            encode_frame(&frame, MAX_SERVER_FRAME).expect("encode"),
            encode_frame(&owned, MAX_SERVER_FRAME).expect("encode")
        );
    }
}
