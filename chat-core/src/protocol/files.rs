//! File transfers (since 5): an offer to one user, accepted or declined, then the content in
//! chunks through the server under flow control, verified by its SHA-256 at the end.

use serde::{Deserialize, Serialize};

/// Identifies a transfer on its server, from the offer to its end.
pub type TransferId = u64;

/// Most bytes a sender may have sent beyond what the recipient acknowledged. The server cancels
/// a transfer whose sender goes beyond it, so what it holds for a recipient stays bounded.
pub const FILE_WINDOW: u64 = 1024 * 1024;

/// The usual size of a chunk's data: small enough that a chat frame waits for at most one
/// chunk in any queue, large enough that a transfer costs few frames.
pub const FILE_CHUNK: usize = 32 * 1024;

/// An offer, as its recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The transfer.
    pub id: TransferId,
    /// Who offers it.
    pub from: String,
    /// The file's name as the sender gave it (a recipient makes it safe before using it).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content.
    pub sha256: [u8; 32],
}

/// A SHA-256 in lowercase hexadecimal, as `sha256sum` prints it.
pub fn sha256_hex(hash: &[u8; 32]) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
