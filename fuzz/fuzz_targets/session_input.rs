//! `Session::handle_input` for each profile and role, with and without
//! resumption, fed fuzzer bytes cut at fuzzer-chosen points with timeouts in
//! between: never a panic, never past a bound.
//!
//! Input: one byte of mode bits (profile, role, resumption, a valid peer hello
//! first), then records of one control byte (how much to feed next, and how far
//! the clock moves) followed by that many bytes of input.
//!
//! The body is `hawser_fuzzing::session_input::run`, which `cargo test` also runs on the
//! committed seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hawser_fuzzing::session_input::run(data));
