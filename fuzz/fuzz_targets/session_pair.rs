//! Two sessions wired back to back, driven by a fuzzer-chosen sequence of
//! operations: open, write, read, finish, reset, go-away, ping, deliver part of
//! what is in flight, let time pass, cut the link, resume, and inject hostile
//! bytes. Checks, after every step: no panic, every bound kept, and (until
//! bytes are injected) every byte a stream delivers is the next byte its peer
//! wrote, exactly once, in order, across cuts and resumes.
//!
//! The body is `hawser_fuzzing::session_pair::run`, which `cargo test` also runs on the
//! committed seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hawser_fuzzing::session_pair::run(data));
