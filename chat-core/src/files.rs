//! What both ends of a file transfer need besides the protocol: the SHA-256 of the content,
//! and a name that is safe to save under, never overwriting a file that is there.

use std::io;
use std::path::{Path, PathBuf};

/// A SHA-256 computed piece by piece.
#[derive(Clone)]
pub struct Sha256(ring::digest::Context);

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Sha256 {
    /// Adds the next piece.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of everything added.
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::default();
    h.update(data);
    h.finish()
}

/// Longest name kept, in bytes (file systems allow 255).
const MAX_NAME: usize = 200;

/// Characters that change how a name reads without showing: direction overrides (which can
/// make `cod.exe` read as `exe.doc`), zero-width characters, the byte order mark.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A name that is safe to save a received file under in a download folder: its last path
/// component only (no `/`, `\` or `..`), without control or invisible characters, without
/// leading dots (nothing hidden, no `.bashrc`) or surrounding blanks, at most 200 bytes (the
/// extension kept), and `file` when nothing is left.
pub fn safe_file_name(offered: &str) -> String {
    let last = offered.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !invisible(*c))
        .collect();
    let name = cleaned.trim().trim_start_matches('.').trim();
    let name = if name.len() > MAX_NAME {
        let (stem, ext) = split_extension(name);
        let keep = MAX_NAME.saturating_sub(ext.len());
        let mut cut = keep.min(stem.len());
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{ext}", &stem[..cut])
    } else {
        name.to_owned()
    };
    if name.is_empty() || name == "." || name == ".." {
        "file".to_owned()
    } else {
        name
    }
}

/// `report.pdf` → (`report`, `.pdf`); a name without a dot (or only a leading one) has no
/// extension. Long extensions are not extensions.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => name.split_at(i),
        _ => (name, ""),
    }
}

/// The `n`th name tried for `name`: `report.pdf`, `report (1).pdf`, `report (2).pdf`, ...
fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// Moves the finished file `tmp` into `dir` under `name` (made safe), or `name (1)`, `name
/// (2)`, ... when taken: an existing file is never overwritten, even one that appears
/// meanwhile (the final name is made with a hard link, which fails rather than replace). The
/// path it now has.
pub fn place(tmp: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let name = safe_file_name(name);
    for n in 0..10_000 {
        let candidate = dir.join(numbered(&name, n));
        match std::fs::hard_link(tmp, &candidate) {
            Ok(()) => {
                // The file has its name: a temporary name left behind is no reason to say
                // otherwise.
                let _ = std::fs::remove_file(tmp);
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // A file system without hard links: checked, then renamed.
            Err(_) if !candidate.exists() => {
                std::fs::rename(tmp, &candidate)?;
                return Ok(candidate);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("too many files named like {name} already"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe_to_save_under() {
        for (offered, safe) in [
            ("report.pdf", "report.pdf"),
            ("../../.bashrc", "bashrc"),
            ("/etc/passwd", "passwd"),
            ("..\\..\\win.ini", "win.ini"),
            ("..", "file"),
            ("", "file"),
            ("a\u{0}b\nc\u{1b}[31m.txt", "abc[31m.txt"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("  spaced out  ", "spaced out"),
            ("ünïcödé 🎉.txt", "ünïcödé 🎉.txt"),
        ] {
            assert_eq!(safe_file_name(offered), safe, "{offered:?}");
        }
        let long = format!("{}.tar.gz", "é".repeat(300));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= MAX_NAME, "{}", safe.len());
        assert!(safe.ends_with(".gz"), "{safe}");
    }

    #[test]
    fn a_file_is_placed_without_overwriting_anything() {
        let dir = tempfile_dir();
        let put = |content: &str| {
            let tmp = dir.join(".part");
            std::fs::write(&tmp, content).expect("write");
            place(&tmp, &dir, "report.pdf").expect("place")
        };
        assert_eq!(put("one"), dir.join("report.pdf"));
        assert_eq!(put("two"), dir.join("report (1).pdf"));
        assert_eq!(put("three"), dir.join("report (2).pdf"));
        assert_eq!(
            std::fs::read_to_string(dir.join("report.pdf")).expect("read"),
            "one"
        );
        assert!(!dir.join(".part").exists());
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chat-core-files-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn the_hash_is_sha256() {
        assert_eq!(
            crate::protocol::sha256_hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
