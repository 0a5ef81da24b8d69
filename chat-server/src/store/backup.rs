//! `chat-server backup`: a consistent copy of a database that a server may be using.

use std::path::Path;

use rusqlite::Connection;

use super::sqlite::create_private;

/// What [`backup`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy's size, in bytes.
    pub bytes: u64,
    /// Its schema version.
    pub schema: u32,
    /// Messages in it.
    pub messages: u64,
}

/// Copies the database at `db` (which a server may be using) to a new file `to`, readable by
/// its owner only: a consistent snapshot (SQLite's `VACUUM INTO`, which reads in one
/// transaction while the server goes on writing), checked with `PRAGMA integrity_check` and
/// synced to disk before it is reported. `to` must not exist; a copy that fails is removed.
pub fn backup(db: &Path, to: &Path) -> Result<BackupReport, String> {
    use rusqlite::OpenFlags;
    let target = to
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", to.display()))?;
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open the database {}: {e}", db.display()))?;
    source
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let schema: u32 = source
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a chat database: {e}", db.display()))?;
    if schema == 0 {
        return Err(format!("{} is not a chat database", db.display()));
    }
    if to.exists() {
        return Err(format!(
            "{} exists already: a backup goes to a new file",
            to.display()
        ));
    }
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut folders = std::fs::DirBuilder::new();
        folders.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folders, 0o700);
        folders
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // An empty file of our own first, so that the copy is private from its first byte.
    create_private(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let copied = copy_into(&source, db, to, target);
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    let (messages, bytes) = copied?;
    Ok(BackupReport {
        bytes,
        schema,
        messages,
    })
}

/// `VACUUM INTO` the new (empty) file `to`, checked and synced: its messages and its size.
fn copy_into(
    source: &Connection,
    db: &Path,
    to: &Path,
    target: &str,
) -> Result<(u64, u64), String> {
    use rusqlite::OpenFlags;
    source
        .execute("VACUUM INTO ?1", [target])
        .map_err(|e| format!("cannot copy {} to {}: {e}", db.display(), to.display()))?;
    let copy = Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the copy {}: {e}", to.display()))?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("cannot check the copy {}: {e}", to.display()))?;
    if check != "ok" {
        return Err(format!(
            "the copy {} fails its integrity check: {check}",
            to.display()
        ));
    }
    let messages: i64 = copy
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .map_err(|e| format!("cannot read the copy {}: {e}", to.display()))?;
    drop(copy);
    // VACUUM INTO does not sync what it wrote: the copy, then its folder's entry for it.
    let synced = std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .and_then(
            |()| match to.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
                None => Ok(()),
            },
        );
    synced.map_err(|e| format!("cannot sync the copy {}: {e}", to.display()))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok((u64::try_from(messages).unwrap_or(0), bytes))
}
