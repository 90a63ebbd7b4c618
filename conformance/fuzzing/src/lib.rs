//! # hawser-fuzzing
//!
//! The bodies of the cargo-fuzz targets in `fuzz/`, as plain functions: each
//! module's `run` takes one input, panics on a broken promise and returns
//! otherwise. The targets in `fuzz/` call them under libFuzzer (nightly); the
//! test `tests/seeds.rs` replays the committed seed corpus (`fuzz/seeds/`)
//! through them on stable, so `cargo test` catches a regression without
//! nightly. `cargo run -p hawser-fuzzing --example fuzz_seeds` writes the seeds
//! afresh from real transcripts: sessions of both profiles, with and without
//! resumption, exchanging data, resets, pings and go-aways, and a real resume.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod common;
pub mod frame_header;
pub mod opening;
pub mod resume_answer;
pub mod session_input;
pub mod session_pair;
pub mod settings;

/// A target's body: runs one input, panics on a broken promise.
pub type Target = fn(&[u8]);

/// Every target, by the name cargo-fuzz knows it by.
pub const TARGETS: [(&str, Target); 6] = [
    ("frame_header", frame_header::run),
    ("settings", settings::run),
    ("opening", opening::run),
    ("session_input", session_input::run),
    ("resume_answer", resume_answer::run),
    ("session_pair", session_pair::run),
];
