//! The server's handling of a sequence of client frames (and raw bytes), on a real server.
#![no_main]

use std::sync::{Mutex, OnceLock};

#[path = "../src/harness.rs"]
mod harness;

static TARGET: OnceLock<Mutex<harness::Session>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = TARGET.get_or_init(|| {
        harness::abort_on_panic();
        Mutex::new(harness::Session::new())
    });
    target
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .run(data);
});
