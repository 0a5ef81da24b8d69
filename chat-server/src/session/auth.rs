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
    // One attempt at a time per address and per account, and none within the wait after a
    // wrong password: no password is even checked then. Worth retrying, so clients do, a
    // little later.
    if let Err(wait) = shared.failures.begin(ip, &key) {
        return Err(refusal(
            RejectReason::Unavailable,
            format!(
                "too many wrong passwords from your address or for this nickname, or a login \
                 under way: try again in {} s",
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            ),
        ));
    }
    let result = check_login(accepted, shared, &key, password, deny, &refusal).await;
    match &result {
        Ok(_) => shared.failures.succeeded(ip, &key),
        // A wrong password gave the turns back after its delay (in `check_login`).
        Err(r) if r.reason == Some(RejectReason::BadPassword) => {}
        Err(_) => shared.failures.finished(ip, &key),
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
    // Wiped from memory once checked or hashed, whichever way this ends.
    let password = zeroize::Zeroizing::new(password);
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
    // A wrong password and an unknown nickname are answered alike, after the same work and
    // the same delay: nobody learns which nicknames are accounts by guessing.
    let wrong = || {
        refusal(
            RejectReason::BadPassword,
            format!(
                "wrong password, or no account is named {nick:?} (without a password you \
                 connect as a guest, and /register creates an account)"
            ),
        )
    };
    let Some(account) = account else {
        if !deny {
            let decoy = login::decoy();
            let checked = login::off_thread(&shared.stats, login::Priority::Login, move || {
                login::verify_password(&password, decoy)
            });
            if checked.await.is_none() {
                return Err(busy(refusal));
            }
            tokio::time::sleep(shared.failures.failed(ip, &account_key)).await;
            return Err(wrong());
        }
        login::check_password(&password).map_err(|rule| {
            // Not a wrong password: the turns are given back at once.
            shared.failures.finished(ip, &account_key);
            refusal(
                RejectReason::BadPassword,
                format!("cannot register {nick:?}: {rule}"),
            )
        })?;
        let hash = login::off_thread(&shared.stats, login::Priority::Login, move || {
            login::hash_password(&password)
        })
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
                last_login: None,
            },
            create: Some(hash),
        }));
    };
    let hash = account.hash.clone();
    let verified = login::off_thread(&shared.stats, login::Priority::Login, move || {
        login::verify_password(&password, &hash)
    });
    let Some(matches) = verified.await else {
        return Err(busy(refusal));
    };
    if !matches {
        tokio::time::sleep(shared.failures.failed(ip, &account_key)).await;
        return Err(wrong());
    }
    Ok(Some(Login {
        account,
        create: None,
    }))
}

/// The refusal of a login whose password could not be checked now.
fn busy(refusal: &impl Fn(RejectReason, String) -> Refusal) -> Refusal {
    refusal(
        RejectReason::Unavailable,
        "the server is too busy checking passwords right now; try again later".into(),
    )
}

/// Hashes a new password (see [`hash`]) into the hub command it is for. A registration is
/// first put to the hub, which refuses it before anything is hashed if it could not be
/// carried out (a relayed guest, an account already, a nickname too close to an account's).
pub(super) async fn hashed(
    conn: ConnId,
    purpose: HashFor,
    password: String,
    hub: tokio::sync::mpsc::Sender<Cmd>,
    stats: std::sync::Arc<crate::stats::Stats>,
) -> Result<Cmd, ErrorFrame> {
    if purpose == HashFor::Register {
        let (answer, allowed) = tokio::sync::oneshot::channel();
        let _ = hub.send(Cmd::MayRegister { conn, answer }).await;
        match allowed.await {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => return Err(refused),
            // The hub is gone: the server is shutting down.
            Err(_) => {
                return Err(ErrorFrame {
                    tag: None,
                    code: ErrorCode::Busy,
                    message: "the server is shutting down: nothing was registered".into(),
                });
            }
        }
    }
    let hash = hash(password, &stats).await?;
    Ok(match purpose {
        HashFor::Register => Cmd::Register { conn, hash },
        HashFor::SetPassword => Cmd::SetPassword { conn, hash },
    })
}

/// Hashes a new password on the blocking pool.
pub(super) async fn hash(
    password: String,
    stats: &crate::stats::Stats,
) -> Result<login::HashedPassword, ErrorFrame> {
    // Wiped from memory once hashed, or refused.
    let password = zeroize::Zeroizing::new(password);
    let fail = |message: String| ErrorFrame {
        tag: None,
        code: ErrorCode::InvalidPassword,
        message,
    };
    login::check_password(&password).map_err(fail)?;
    let hashed = login::off_thread(stats, login::Priority::NewPassword, move || {
        login::hash_password(&password)
    });
    match hashed.await {
        Some(hashed) => hashed.map_err(fail),
        None => Err(ErrorFrame {
            tag: None,
            code: ErrorCode::Busy,
            message: "the server is too busy hashing passwords right now; try again".into(),
        }),
    }
}
