//! A resuming client reading the server's answer (and whatever follows it) on
//! its new link: fuzzer bytes, cut at fuzzer-chosen points. Never a panic,
//! never past a bound; a bad answer ends the session or leaves it detached.
//!
//! The body is `hawser_fuzzing::resume_answer::run`, which `cargo test` also runs on the
//! committed seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hawser_fuzzing::resume_answer::run(data));
