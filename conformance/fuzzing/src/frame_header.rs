//! The 12-byte frame header, both profiles: decoding never panics, and a header
//! that decodes encodes back to the very same bytes (validation is strict: no
//! second spelling of a frame gets through).

use hawser_core::frame::{Header, HEADER_LEN};
use hawser_core::Profile;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(bytes) = data.get(..HEADER_LEN) else {
        return;
    };
    let bytes: &[u8; HEADER_LEN] = bytes.try_into().expect("sliced to HEADER_LEN");
    for profile in [Profile::Yamux, Profile::Native] {
        if let Ok(header) = Header::decode(bytes, profile) {
            assert_eq!(&header.encode(profile), bytes, "{header:?} re-encodes differently");
            assert_eq!(Header::decode(&header.encode(profile), profile), Ok(header));
        }
    }
}
