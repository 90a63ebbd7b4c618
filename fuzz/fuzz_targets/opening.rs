//! A server acceptor's first read of a new link: a hello, a resume request, or
//! neither. Parsing never panics, never claims more bytes than it was given, and
//! a request it accepts survives an encode/parse round trip (the reserved field
//! is not checked on receipt, so the bytes themselves may differ there).
//!
//! The body is `hawser_fuzzing::opening::run`, which `cargo test` also runs on the
//! committed seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hawser_fuzzing::opening::run(data));
