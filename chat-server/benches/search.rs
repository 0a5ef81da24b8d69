//! The server's search (`/search -s`) over a database of 1,000,000 stored messages (10 rooms,
//! 8 to 16 words each from a vocabulary of 5,000 with a skewed frequency, so some words are in
//! most messages), on a file in a temp dir, and the cost of storing a message with its index.
//! Run with `cargo bench -p chat-server --bench search` (building the database takes a minute
//! or two; `SEARCH_BENCH_MESSAGES` sets another size). docs/performance.md has the figures.
//!
//! - `search`: one request of 20 matches at most, as the store thread answers it:
//!   `rare` (a word in 10 messages), `common` (the most frequent word: 20 matches at once),
//!   `filtered` (two frequent words that the pattern wants side by side, which few messages
//!   have: the index gives many, the pattern keeps few, up to the 2,000 read per request),
//!   `absent` (a word in no message).
//! - `store_100`: storing 100 messages in one transaction, then indexing them in another
//!   (`true`, what the store thread does when it is idle) or not (`false`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chat_core::protocol::{Body, ChatMessage, Target};
use chat_server::search::Query;
use chat_server::store::{SearchScope, SqliteStore, Store, StoredRoom, Write};
use chrono::{TimeZone, Utc};

fn main() {
    divan::main();
}

const ROOMS: usize = 10;
const VOCABULARY: usize = 5_000;
const RARE: &str = "zebracorn";

fn vocabulary() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut rng = fastrand::Rng::with_seed(1);
        (0..VOCABULARY)
            .map(|_| {
                (0..rng.usize(4..10))
                    .map(|_| rng.alphabetic().to_ascii_lowercase())
                    .collect()
            })
            .collect()
    })
}

fn message(id: u64, rng: &mut fastrand::Rng) -> Write {
    let words = vocabulary();
    let mut text: Vec<&str> = (0..rng.usize(8..=16))
        .map(|_| {
            // Skewed: the first words are in most messages.
            let at = (rng.f64().powi(3) * VOCABULARY as f64) as usize;
            words[at.min(VOCABULARY - 1)].as_str()
        })
        .collect();
    if id.is_multiple_of(100_000) {
        text.push(RARE);
    }
    let room = format!("r{}", id as usize % ROOMS);
    Write::Message {
        message: Arc::new(ChatMessage {
            id,
            at: Utc
                .timestamp_millis_opt(1_700_000_000_000 + id as i64)
                .single()
                .expect("time"),
            from: format!("user{}", id % 97),
            to: Target::Room(room.clone()),
            body: Body::Text(text.join(" ")),
            attrs: Vec::new(),
            tag: None,
        }),
        room: Some(room),
        offline_for: Vec::new(),
    }
}

/// A store with `n` messages, in a temp dir kept for the run.
fn filled(n: u64) -> SqliteStore {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let mut store = SqliteStore::open(&dir.join("chat.db")).expect("open");
    let rooms: Vec<Write> = (0..ROOMS)
        .map(|i| {
            Write::Room(StoredRoom {
                key: format!("r{i}"),
                name: format!("r{i}"),
                topic: String::new(),
                by_guest: false,
            })
        })
        .collect();
    store.apply(&rooms).expect("rooms");
    let mut rng = fastrand::Rng::with_seed(2);
    let started = std::time::Instant::now();
    let mut id = 1;
    while id <= n {
        let batch: Vec<Write> = (id..(id + 10_000).min(n + 1))
            .map(|i| message(i, &mut rng))
            .collect();
        id += batch.len() as u64;
        store.apply(&batch).expect("messages");
    }
    let stored = started.elapsed();
    while store.index(5_000).expect("index") > 0 {}
    eprintln!(
        "stored {n} messages in {:.1} s, indexed them in {:.1} s more",
        stored.as_secs_f64(),
        (started.elapsed() - stored).as_secs_f64()
    );
    store
}

fn big() -> &'static std::sync::Mutex<SqliteStore> {
    static STORE: OnceLock<std::sync::Mutex<SqliteStore>> = OnceLock::new();
    STORE.get_or_init(|| {
        let n = std::env::var("SEARCH_BENCH_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        std::sync::Mutex::new(filled(n))
    })
}

fn scope() -> SearchScope {
    SearchScope {
        rooms: (0..ROOMS)
            .map(|i| (format!("r{i}"), format!("r{i}")))
            .collect::<HashMap<_, _>>(),
        account: None,
    }
}

#[divan::bench(args = ["rare", "common", "filtered", "absent"])]
fn search(bencher: divan::Bencher, kind: &str) {
    let words = vocabulary();
    let pattern = match kind {
        "rare" => RARE.to_owned(),
        "common" => words[0].clone(),
        "filtered" => format!("{} {}", words[1], words[0]),
        _ => "qqqqqqqq".to_owned(),
    };
    let query = Query::parse(&pattern).expect("pattern");
    let scope = scope();
    let mut store = big().lock().expect("store");
    let (found, _) = store.search(&scope, &query, None, 20).expect("search");
    eprintln!("{kind}: {} matches", found.len());
    bencher.bench_local(|| store.search(&scope, &query, None, 20).expect("search"));
}

#[divan::bench(args = [true, false], sample_count = 20)]
fn store_100(bencher: divan::Bencher, indexed: bool) {
    let mut store = filled(10_000);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut id = 1_000_000;
    bencher.bench_local(|| {
        let batch: Vec<Write> = (id..id + 100).map(|i| message(i, &mut rng)).collect();
        id += 100;
        store.apply(&batch).expect("store");
        if indexed {
            store.index(100).expect("index");
        }
    });
}
