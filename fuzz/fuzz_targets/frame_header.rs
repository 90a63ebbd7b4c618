//! The 12-byte frame header, both profiles: decoding never panics, and a header
//! that decodes encodes back to the very same bytes (validation is strict: no
//! second spelling of a frame gets through).
//!
//! The body is `hawser_fuzzing::frame_header::run`, which `cargo test` also runs on the
//! committed seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hawser_fuzzing::frame_header::run(data));
