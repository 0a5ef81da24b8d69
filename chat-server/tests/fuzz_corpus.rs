//! The fuzzing harness in the normal test suite: every input kept in the corpus
//! (`chat-server/fuzz/corpus/`) and every input that once made a target fail
//! (`chat-server/fuzz/regressions/`) is replayed through the same checks the fuzzers make.
//! The fuzzers themselves run with cargo-fuzz (see docs/performance.md).

use std::path::Path;

#[path = "../fuzz/src/harness.rs"]
mod harness;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("read input");
                found.push((path.display().to_string(), data));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn frame_decoding_survives_the_corpus_and_past_failures() {
    let inputs = inputs("frames");
    assert!(!inputs.is_empty(), "the frames corpus is missing");
    for (name, data) in inputs {
        eprintln!("{name}");
        harness::frames(&data);
    }
}

#[test]
fn the_server_survives_the_session_corpus_and_past_failures() {
    let inputs = inputs("session");
    assert!(!inputs.is_empty(), "the session corpus is missing");
    let mut session = harness::Session::new();
    for (name, data) in inputs {
        eprintln!("{name}");
        session.run(&data);
    }
}
