//! Frame decoding: any bytes, read as a stream of client or server frames.
#![no_main]

#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::frames(data));
