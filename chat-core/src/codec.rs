//! Serialization of one frame payload. This is the only module that knows about bincode:
//! replacing the serializer means changing this file (and the hex dumps in docs/protocol.md).
//!
//! bincode is pinned to 2.0.1 (3.0.0 is a tombstone release) and used through its serde
//! integration with `config::standard()`: little-endian, variable-length integers.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::error::{DecodeError, EncodeError};
use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Upper bound on what one decode may claim to allocate. Frames are already bounded by the
/// framing layer; this guards against a small frame claiming a huge collection.
const DECODE_LIMIT: usize = 16 * 1024 * 1024;

type Config = Configuration<LittleEndian, Varint, Limit<DECODE_LIMIT>>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// A payload that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be serialized.
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The bytes are not a valid frame of the expected type.
    #[error("cannot decode frame: {0}")]
    Decode(String),
    /// The payload decoded but bytes were left over.
    #[error("cannot decode frame: {0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

impl From<EncodeError> for CodecError {
    fn from(e: EncodeError) -> Self {
        CodecError::Encode(e.to_string())
    }
}

impl From<DecodeError> for CodecError {
    fn from(e: DecodeError) -> Self {
        CodecError::Decode(e.to_string())
    }
}

/// Appends the encoding of `value` to `dst`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(value, &mut writer, config())?;
    Ok(())
}

/// Decodes exactly one value from the whole of `src`.
pub fn decode<T: DeserializeOwned>(src: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(src, config())?;
    if used != src.len() {
        return Err(CodecError::TrailingBytes(src.len() - used));
    }
    Ok(value)
}

/// Decodes exactly one value from the whole of `src`, borrowing strings from it: for readers
/// that look at many frames and keep nothing (the load generator).
pub fn decode_borrowed<'a, T: Deserialize<'a>>(src: &'a [u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::borrow_decode_from_slice(src, config())?;
    if used != src.len() {
        return Err(CodecError::TrailingBytes(src.len() - used));
    }
    Ok(value)
}
