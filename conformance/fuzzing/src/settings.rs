//! The native hello's settings payload: decoding never panics, and what decodes
//! survives an encode/decode round trip unchanged.

use hawser_core::Settings;

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Ok(settings) = Settings::decode(data) {
        assert_eq!(Settings::decode(&settings.encode()), Ok(settings));
    }
}
