//! Framing: a 4-byte big-endian payload length, then one encoded value.
//!
//! Splitting the byte stream is done by tokio-util's [`LengthDelimitedCodec`]; this module adds
//! the typed layer on top and checks the announced length against the limit *before* any
//! buffer is grown for it, so the error can name both numbers.

use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::codec::{self, CodecError};

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a payload larger than allowed.
    #[error("frame too large: {len} bytes announced, the limit is {max}")]
    TooLarge {
        /// Announced payload length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({have} of {need} bytes received)")]
    Truncated {
        /// Bytes received for the frame, prefix included.
        have: usize,
        /// Bytes the frame needs, prefix included (or 4 if the prefix itself was cut).
        need: usize,
    },
    /// The payload could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// True for errors caused by what the peer sent (as opposed to the socket failing).
    pub fn is_protocol_violation(&self) -> bool {
        !matches!(self, FrameError::Io(_))
    }
}

/// Encodes `value` as one complete frame (prefix included) into a shareable buffer.
///
/// This is what the server does once per message before handing the same bytes to every
/// recipient. The output is exactly what [`LengthDelimitedCodec`] with its default settings
/// would produce for the encoded payload.
pub fn encode_frame<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(64);
    encode_frame_into(value, max, &mut buf)?;
    Ok(buf.freeze())
}

/// Appends one complete frame for `value` to `dst`.
pub fn encode_frame_into<T: Serialize + ?Sized>(
    value: &T,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32(0);
    if let Err(e) = codec::encode_into(value, dst) {
        dst.truncate(start);
        return Err(e.into());
    }
    let len = dst.len() - start - LEN_PREFIX;
    if len > max {
        dst.truncate(start);
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    let prefix = u32::try_from(len).map_err(|_| FrameError::TooLarge {
        len: len as u64,
        max,
    })?;
    dst[start..start + LEN_PREFIX].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// Decodes one payload (without its prefix).
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(codec::decode(payload)?)
}

/// A tokio-util codec that reads frames of type `In` and writes frames of type `Out`.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    inner: LengthDelimitedCodec,
    max: usize,
    /// Payload length of a frame whose prefix the inner codec has already consumed.
    pending: Option<usize>,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec accepting payloads of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(LEN_PREFIX)
            .big_endian()
            .max_frame_length(max)
            .new_codec();
        FrameCodec {
            inner,
            max,
            pending: None,
            _types: PhantomData,
        }
    }

    /// The current payload limit.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Changes the payload limit (the server raises it once the handshake is done).
    pub fn set_max_frame(&mut self, max: usize) {
        self.max = max;
        self.inner.set_max_frame_length(max);
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        if self.pending.is_none() {
            if src.len() < LEN_PREFIX {
                return Ok(None);
            }
            let len = u64::from((&src[..LEN_PREFIX]).get_u32());
            if len > self.max as u64 {
                return Err(FrameError::TooLarge { len, max: self.max });
            }
            // With the prefix complete and within the limit, the inner codec consumes it now.
            self.pending = Some(len as usize);
        }
        match self.inner.decode(src)? {
            Some(payload) => {
                self.pending = None;
                Ok(Some(codec::decode(&payload)?))
            }
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match self.pending {
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                have: src.len(),
                need: LEN_PREFIX,
            }),
            Some(len) => Err(FrameError::Truncated {
                have: LEN_PREFIX + src.len(),
                need: LEN_PREFIX + len,
            }),
        }
    }
}

impl<In, Out: Serialize> Encoder<&Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: &Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame_into(item, self.max, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientFrame, ServerFrame};

    #[test]
    fn encode_frame_matches_length_delimited_codec() {
        let frame = ClientFrame::Ping { nonce: 7 };
        let ours = encode_frame(&frame, 1024).expect("encode");
        let mut payload = BytesMut::new();
        codec::encode_into(&frame, &mut payload).expect("encode payload");
        let mut theirs = BytesMut::new();
        LengthDelimitedCodec::new()
            .encode(payload.freeze(), &mut theirs)
            .expect("ldc encode");
        assert_eq!(&ours[..], &theirs[..]);
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut codec = FrameCodec::<ClientFrame, ServerFrame>::new(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = codec.decode(&mut buf).expect_err("must refuse");
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    len: 0xffff_ffff,
                    max: 1024
                }
            ),
            "{err}"
        );
        assert!(
            buf.capacity() < 1024,
            "no buffer was grown for the announced size"
        );
    }

    #[test]
    fn partial_frame_waits_then_truncation_is_reported_at_eof() {
        let mut codec = FrameCodec::<ClientFrame, ServerFrame>::new(1024);
        let full = encode_frame(&ClientFrame::Ping { nonce: 1 }, 1024).expect("encode");
        let mut buf = BytesMut::from(&full[..full.len() - 1]);
        assert!(codec.decode(&mut buf).expect("partial is fine").is_none());
        let err = codec.decode_eof(&mut buf).expect_err("truncated");
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
    }

    #[test]
    fn frames_arriving_byte_by_byte_decode_correctly() {
        let mut codec = FrameCodec::<ClientFrame, ServerFrame>::new(1024);
        let frames: Vec<ClientFrame> = (0..5).map(|n| ClientFrame::Ping { nonce: n }).collect();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&encode_frame(f, 1024).expect("encode"));
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.put_u8(byte);
            while let Some(f) = codec.decode(&mut buf).expect("decode") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut payload = BytesMut::new();
        codec::encode_into(&ClientFrame::Ping { nonce: 1 }, &mut payload).expect("encode");
        payload.put_u8(0);
        let err = decode_payload::<ClientFrame>(&payload).expect_err("trailing");
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
