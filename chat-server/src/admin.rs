//! `chat-server admin ...`: the operator's tools at the console, working on the database file
//! while the server runs or is stopped. Every change is one transaction; the changes a running
//! server keeps in memory (deleted accounts and rooms, lifted bans, operators) are also
//! recorded as admin events, which the server applies within seconds (it watches the file's
//! `data_version`).

use std::path::Path;

use chat_core::names;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::config::AdminCommand;
use crate::store::moderation::{self, AdminAction, record_admin_event};
use crate::store::{SqliteStore, StoreError};

/// Runs an admin command (other than `backup`) on the database at `db`, writing what it shows
/// to `out`. The error is a sentence for the operator.
pub fn run(db: &Path, command: &AdminCommand, out: &mut dyn std::io::Write) -> Result<(), String> {
    if !db.exists() {
        return Err(format!("there is no database at {}", db.display()));
    }
    let mut conn = SqliteStore::open(db)
        .map_err(|e| format!("cannot open the database {}: {e}", db.display()))?
        .into_connection();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let shown = match command {
        AdminCommand::Backup { .. } => return Err("backup is not run here".into()),
        AdminCommand::Accounts => accounts(&conn),
        AdminCommand::Account { nick } => account(&conn, nick),
        AdminCommand::DeleteAccount { nick } => delete_account(&mut conn, nick),
        AdminCommand::ResetPassword {
            nick,
            password_stdin,
        } => reset_password(&mut conn, nick, *password_stdin),
        AdminCommand::Rooms => rooms(&conn),
        AdminCommand::DeleteRoom { room } => delete_room(&mut conn, room),
        AdminCommand::Bans => bans(&conn),
        AdminCommand::Unban { target } => unban(&mut conn, target),
        AdminCommand::Op { nick } => operator(&mut conn, nick, true),
        AdminCommand::Deop { nick } => operator(&mut conn, nick, false),
    };
    let shown = shown.map_err(|e| match e {
        Failure::Store(e) => format!("database error: {e}"),
        Failure::Refused(message) => message,
    })?;
    out.write_all(shown.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

enum Failure {
    Store(StoreError),
    Refused(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Store(e.into())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

type Shown = Result<String, Failure>;

fn date(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// The key of the account registered as `nick`, or the refusal.
fn account_key(conn: &Connection, nick: &str) -> Result<(String, String), Failure> {
    let key = names::nick_keys(nick).folded;
    let found: Option<String> = conn
        .query_row("SELECT nick FROM accounts WHERE key = ?1", [&key], |r| {
            r.get(0)
        })
        .optional()?;
    found
        .map(|nick| (key, nick))
        .ok_or_else(|| Failure::Refused(format!("there is no account {nick:?}")))
}

fn accounts(conn: &Connection) -> Shown {
    let mut out = String::new();
    let mut stmt = conn.prepare(
        "SELECT nick, created_ms, operator, \
         (SELECT count(*) FROM account_rooms WHERE account = accounts.key) \
         FROM accounts ORDER BY key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut n = 0;
    for row in rows {
        let (nick, created, op, rooms) = row?;
        let mark = if op { " (server operator)" } else { "" };
        out.push_str(&format!(
            "{nick}{mark}  registered {}  in {rooms} rooms besides the lobby\n",
            date(created)
        ));
        n += 1;
    }
    out.push_str(&format!("{n} accounts\n"));
    Ok(out)
}

fn account(conn: &Connection, nick: &str) -> Shown {
    let (key, nick) = account_key(conn, nick)?;
    let (created, op): (i64, bool) = conn.query_row(
        "SELECT created_ms, operator FROM accounts WHERE key = ?1",
        [&key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let list = |sql: &str| -> Result<Vec<String>, Failure> {
        Ok(conn
            .prepare(sql)?
            .query_map([&key], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    };
    let rooms = list(
        "SELECT coalesce(rooms.name, account_rooms.room) FROM account_rooms \
         LEFT JOIN rooms ON rooms.key = account_rooms.room WHERE account = ?1 ORDER BY 1",
    )?;
    let ops = list(
        "SELECT coalesce(rooms.name, room_ops.room) FROM room_ops \
         LEFT JOIN rooms ON rooms.key = room_ops.room WHERE account = ?1 ORDER BY 1",
    )?;
    let offline: i64 = conn.query_row(
        "SELECT count(*) FROM offline WHERE account = ?1",
        [&key],
        |r| r.get(0),
    )?;
    let banned: Option<String> = conn
        .query_row(
            "SELECT reason FROM bans WHERE target = ?1",
            [crate::bans::account_target(&key)],
            |r| r.get(0),
        )
        .optional()?;
    let hashes = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.iter()
                .map(|r| format!("#{r}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut out = format!(
        "account:          {nick}\nregistered:       {}\nserver operator:  {}\nrooms:            {}\n\
         operator of:      {}\nkept messages:    {offline}\n",
        date(created),
        if op { "yes" } else { "no" },
        hashes(&rooms),
        hashes(&ops),
    );
    if let Some(reason) = banned {
        out.push_str(&format!("banned:           yes ({reason})\n"));
    }
    Ok(out)
}

fn delete_account(conn: &mut Connection, nick: &str) -> Shown {
    let (key, nick) = account_key(conn, nick)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for sql in [
        "DELETE FROM offline WHERE account = ?1",
        "DELETE FROM account_rooms WHERE account = ?1",
        "DELETE FROM room_ops WHERE account = ?1",
        "DELETE FROM accounts WHERE key = ?1",
    ] {
        tx.execute(sql, [&key])?;
    }
    record_admin_event(&tx, AdminAction::DeleteAccount, &key)?;
    tx.commit()?;
    Ok(format!(
        "deleted the account {nick} (its messages stay in the history; anyone may now use the \
         nickname)\n"
    ))
}

fn reset_password(conn: &mut Connection, nick: &str, from_stdin: bool) -> Shown {
    let (key, nick) = account_key(conn, nick)?;
    let (password, shown) = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::Refused(format!("cannot read the password: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        (password, None)
    } else {
        let token = crate::monitor::random_token()
            .map_err(|e| Failure::Refused(format!("cannot make a password: {e}")))?;
        let password = token.expose().to_owned();
        (password.clone(), Some(password))
    };
    crate::login::check_password(&password).map_err(Failure::Refused)?;
    let hash = crate::login::hash_password(&password).map_err(Failure::Refused)?;
    conn.execute(
        "UPDATE accounts SET hash = ?2 WHERE key = ?1",
        params![key, hash.as_str()],
    )?;
    Ok(match shown {
        Some(password) => format!(
            "the new password of {nick} is: {password}\n(give it to them over a safe channel; \
             /password changes it)\n"
        ),
        None => format!("the password of {nick} was changed\n"),
    })
}

fn rooms(conn: &Connection) -> Shown {
    let mut stmt = conn.prepare(
        "SELECT name, topic, topic_locked, \
         (SELECT count(*) FROM account_rooms WHERE room = rooms.key), \
         (SELECT count(*) FROM messages WHERE room = rooms.key), \
         (SELECT group_concat(account, ', ') FROM room_ops WHERE room = rooms.key) \
         FROM rooms ORDER BY key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut out = String::new();
    let mut n = 0;
    for row in rows {
        let (name, topic, locked, accounts, messages, ops) = row?;
        let lock = if locked { " (locked)" } else { "" };
        out.push_str(&format!(
            "#{name}  {accounts} accounts, {messages} messages, operators: {}  topic{lock}: {}\n",
            ops.unwrap_or_else(|| "none".into()),
            if topic.is_empty() { "none" } else { &topic }
        ));
        n += 1;
    }
    out.push_str(&format!("{n} rooms stored\n"));
    Ok(out)
}

fn delete_room(conn: &mut Connection, room: &str) -> Shown {
    let name = room.strip_prefix('#').unwrap_or(room);
    let key = names::fold(name);
    if key == chat_core::protocol::DEFAULT_ROOM {
        return Err(Failure::Refused("the lobby cannot be deleted".into()));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: Option<String> = tx
        .query_row("SELECT name FROM rooms WHERE key = ?1", [&key], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(name) = found else {
        return Err(Failure::Refused(format!("there is no room #{name}")));
    };
    let messages: i64 = tx.query_row(
        "SELECT count(*) FROM messages WHERE room = ?1",
        [&key],
        |r| r.get(0),
    )?;
    crate::store::delete_room(&tx, &key)?;
    record_admin_event(&tx, AdminAction::DeleteRoom, &key)?;
    tx.commit()?;
    Ok(format!("deleted #{name} and its {messages} messages\n"))
}

fn bans(conn: &Connection) -> Shown {
    let now = Utc::now();
    let mut out = String::new();
    let list = moderation::bans(conn)?;
    let active: Vec<_> = list.iter().filter(|b| b.active(now)).collect();
    for ban in &active {
        let until = match ban.until {
            Some(until) => format!("until {}", until.format("%Y-%m-%d %H:%M UTC")),
            None => "until lifted".to_owned(),
        };
        let reason = if ban.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", ban.reason)
        };
        out.push_str(&format!(
            "{}  by {} on {}, {until}{reason}\n",
            ban.target,
            ban.by,
            ban.at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    out.push_str(&format!("{} bans\n", active.len()));
    Ok(out)
}

fn unban(conn: &mut Connection, given: &str) -> Shown {
    let target = crate::bans::lift_target(given);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if tx.execute("DELETE FROM bans WHERE target = ?1", [&target])? == 0 {
        return Err(Failure::Refused(format!(
            "there is no ban on {given} (`chat-server admin bans` lists them)"
        )));
    }
    record_admin_event(&tx, AdminAction::Unban, &target)?;
    tx.commit()?;
    Ok(format!("lifted the ban on {target}\n"))
}

fn operator(conn: &mut Connection, nick: &str, grant: bool) -> Shown {
    let (key, nick) = account_key(conn, nick)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE accounts SET operator = ?2 WHERE key = ?1",
        params![key, grant],
    )?;
    let action = if grant {
        AdminAction::Op
    } else {
        AdminAction::Deop
    };
    record_admin_event(&tx, action, &key)?;
    tx.commit()?;
    Ok(if grant {
        format!("{nick} is now a server operator\n")
    } else {
        format!("{nick} is no longer a server operator\n")
    })
}
