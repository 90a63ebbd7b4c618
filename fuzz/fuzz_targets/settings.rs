//! The native hello's settings payload: decoding never panics, and what decodes
//! survives an encode/decode round trip unchanged.
#![no_main]

use hawser_core::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(settings) = Settings::decode(data) {
        assert_eq!(Settings::decode(&settings.encode()), Ok(settings));
    }
});
