//! The native hello's settings payload: decoding never panics, and what decodes
//! survives an encode/decode round trip unchanged.
//!
//! The body is `hawser_fuzzing::settings::run`, which `cargo test` also runs on the
//! committed seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hawser_fuzzing::settings::run(data));
