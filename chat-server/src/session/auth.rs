//! Logging in: the `Hello`'s password checked against the account it names (or, with
//! `--guests deny`, an account created), and new passwords hashed, both off the connection's
//! task on the hashing pool.

use chat_core::names;
use chat_core::protocol::{ErrorCode, ErrorFrame, RejectReason};

use super::Shared;
use super::handshake::{Accepted, Refusal};
use super::step::HashFor;
use crate::config::GuestPolicy;
use crate::hub::{Cmd, ConnId, Login};
use crate::login;
use crate::store::StoreError;

/// Checks the Hello's password against the account it names: `Ok(None)` is a guest,
/// `Ok(Some)` a verified account (or, with `--guests deny`, one created by this login).
/// A wrong password is answered only after a delay that grows with each failure from the
/// same address.
pub(super) async fn log_in(accepted: &Accepted, shared: &Shared) -> Result<Option<Login>, Refusal> {
    let nick = &accepted.hello.nick;
    let refusal = |reason: RejectReason, message: String| {
        let reason = reason.for_version(accepted.version);
        let mut r = Refusal::new(reason, message, accepted.addr);
        r.nick = Some(nick.clone());
        r
    };
    let deny = shared.config.guests == GuestPolicy::Deny;
    let Some(password) = accepted.hello.password.clone() else {
        if deny {
            return Err(refusal(
                RejectReason::GuestsNotAllowed,
                "this server admits only accounts: log in with a password (a nickname nobody \
                 has registered yet is registered with it)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    if accepted.relayed {
        return Err(refusal(
            RejectReason::NoAccountsThroughRelay,
            "accounts cannot be used through a relay: connect to the server directly to log in, \
             or connect without a password as a guest"
                .into(),
        ));
    }
    if shared.store.is_none() {
        return Err(refusal(
            RejectReason::NoSuchAccount,
            "this server keeps no accounts".into(),
        ));
    }
    let key = names::nick_keys(nick).folded;
    let ip = accepted.addr.ip();
    // One attempt at a time per address, and none within the wait after a wrong password:
    // no password is even checked then. Worth retrying, so clients do, a little later.
    if let Err(wait) = shared.failures.begin(ip) {
        return Err(refusal(
            RejectReason::Unavailable,
            format!(
                "too many wrong passwords from your address, or a login from it under way: \
                 try again in {} s",
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            ),
        ));
    }
    let result = check_login(accepted, shared, &key, password, deny, &refusal).await;
    match &result {
        Ok(_) => shared.failures.succeeded(ip, &key),
        // A wrong password gave the turn back after its delay (in `check_login`).
        Err(r) if r.reason == Some(RejectReason::BadPassword) => {}
        Err(_) => shared.failures.finished(ip),
    }
    result
}

/// The part of [`log_in`] that holds the address's turn: looks the account up and checks the
/// password (or, with `--guests deny`, prepares the account to create).
pub(super) async fn check_login(
    accepted: &Accepted,
    shared: &Shared,
    key: &str,
    password: String,
    deny: bool,
    refusal: &impl Fn(RejectReason, String) -> Refusal,
) -> Result<Option<Login>, Refusal> {
    let nick = &accepted.hello.nick;
    let Some(store) = &shared.store else {
        return Err(refusal(
            RejectReason::NoSuchAccount,
            "this server keeps no accounts".into(),
        ));
    };
    let ip = accepted.addr.ip();
    let account_key = key.to_owned();
    let key = key.to_owned();
    let unavailable = |e: StoreError| {
        refusal(
            RejectReason::Unavailable,
            format!("the server cannot read its accounts right now ({e}); try again later"),
        )
    };
    let account = store
        .read(move |s| s.account(&key))
        .await
        .and_then(|found| found)
        .map_err(unavailable)?;
    let Some(account) = account else {
        if !deny {
            return Err(refusal(
                RejectReason::NoSuchAccount,
                format!(
                    "there is no account named {nick:?}: connect without a password, then \
                     /register to create it"
                ),
            ));
        }
        login::check_password(&password).map_err(|rule| {
            // Not a wrong password: the address's turn is given back at once.
            shared.failures.finished(ip);
            refusal(
                RejectReason::BadPassword,
                format!("cannot register {nick:?}: {rule}"),
            )
        })?;
        let hash = login::off_thread(move || login::hash_password(&password))
            .await
            .and_then(Result::ok)
            .ok_or_else(|| {
                refusal(
                    RejectReason::Unavailable,
                    "the password could not be hashed now; try again later".into(),
                )
            })?;
        return Ok(Some(Login {
            account: crate::store::Account {
                nick: nick.clone(),
                hash: login::HashedPassword::default(),
                rooms: Vec::new(),
            },
            create: Some(hash),
        }));
    };
    let hash = account.hash.clone();
    let Some(matches) = login::off_thread(move || login::verify_password(&password, &hash)).await
    else {
        return Err(refusal(
            RejectReason::Unavailable,
            "the server is too busy checking passwords right now; try again later".into(),
        ));
    };
    if !matches {
        tokio::time::sleep(shared.failures.failed(ip, &account_key)).await;
        return Err(refusal(
            RejectReason::BadPassword,
            format!("wrong password for {:?}", account.nick),
        ));
    }
    Ok(Some(Login {
        account,
        create: None,
    }))
}

/// Hashes a new password (see [`hash`]) into the hub command it is for.
pub(super) async fn hashed(
    conn: ConnId,
    purpose: HashFor,
    password: String,
) -> Result<Cmd, ErrorFrame> {
    let hash = hash(password).await?;
    Ok(match purpose {
        HashFor::Register => Cmd::Register { conn, hash },
        HashFor::SetPassword => Cmd::SetPassword { conn, hash },
    })
}

/// Hashes a new password on the blocking pool.
pub(super) async fn hash(password: String) -> Result<login::HashedPassword, ErrorFrame> {
    let fail = |message: String| ErrorFrame {
        tag: None,
        code: ErrorCode::InvalidPassword,
        message,
    };
    login::check_password(&password).map_err(fail)?;
    match login::off_thread(move || login::hash_password(&password)).await {
        Some(hashed) => hashed.map_err(fail),
        None => Err(ErrorFrame {
            tag: None,
            code: ErrorCode::Busy,
            message: "the server is too busy hashing passwords right now; try again".into(),
        }),
    }
}
