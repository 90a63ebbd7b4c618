//! The native profile's hello: the settings each side announces before anything else.

use alloc::vec::Vec;
use core::fmt;

/// The first four bytes of every hello payload.
pub const HELLO_MAGIC: [u8; 4] = *b"HWSR";
/// The revision of the native profile this implementation speaks.
pub const NATIVE_REVISION: u16 = 1;
/// The largest hello payload a peer may send; checked before anything is buffered.
pub const MAX_HELLO_LEN: u32 = 512;

/// The smallest initial stream window a native peer may announce.
pub const MIN_INITIAL_WINDOW: u32 = 16 * 1024;
/// The smallest max frame size a native peer may announce.
pub const MIN_MAX_FRAME_SIZE: u32 = 16 * 1024;
/// The largest max frame size a native peer may announce.
pub const MAX_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

const SETTING_INITIAL_WINDOW: u16 = 1;
const SETTING_MAX_FRAME_SIZE: u16 = 2;
const SETTING_MAX_STREAMS: u16 = 3;
const SETTING_KEEPALIVE_MS: u16 = 4;
const SETTING_CAPABILITIES: u16 = 5;
const KNOWN_SETTINGS: u16 = 5;

/// What a native peer announces about itself in its hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The receive window each new stream starts with, in both directions' favour:
    /// the peer may send this many bytes on a stream before the first window update.
    pub initial_window: u32,
    /// The largest Data payload the sender of the hello accepts in one frame.
    pub max_frame_size: u32,
    /// How many streams the sender allows open at once (both directions counted);
    /// the receiver never has more than this many of its own streams open.
    pub max_streams: u32,
    /// The sender's keepalive interval in milliseconds (0: none). Informational:
    /// each side keeps its own keepalive, and the receiver does not act on it.
    pub keepalive_ms: u32,
    /// Capability bits: `0x1` says the sender can resume a session over a new
    /// link (PROTOCOL.md section 12); unknown bits are ignored.
    pub capabilities: u32,
}

impl Settings {
    /// The hello payload for these settings.
    pub fn encode(&self) -> Vec<u8> {
        let pairs = [
            (SETTING_INITIAL_WINDOW, self.initial_window),
            (SETTING_MAX_FRAME_SIZE, self.max_frame_size),
            (SETTING_MAX_STREAMS, self.max_streams),
            (SETTING_KEEPALIVE_MS, self.keepalive_ms),
            (SETTING_CAPABILITIES, self.capabilities),
        ];
        let mut out = Vec::with_capacity(8 + pairs.len() * 6);
        out.extend_from_slice(&HELLO_MAGIC);
        out.extend_from_slice(&NATIVE_REVISION.to_be_bytes());
        out.extend_from_slice(&(pairs.len() as u16).to_be_bytes());
        for (id, value) in pairs {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        out
    }

    /// Parses and validates a hello payload.
    ///
    /// Unknown setting ids are skipped so that later revisions can add settings;
    /// a known setting given twice, or out of its range, is an error.
    pub fn decode(payload: &[u8]) -> Result<Settings, HandshakeError> {
        let magic = payload.get(0..4).ok_or(HandshakeError::Truncated)?;
        if magic != HELLO_MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let revision = read_u16(payload, 4)?;
        if revision != NATIVE_REVISION {
            return Err(HandshakeError::UnsupportedRevision(revision));
        }
        let count = usize::from(read_u16(payload, 6)?);
        if payload.len() != 8 + count * 6 {
            return Err(HandshakeError::Truncated);
        }
        let mut values: [Option<u32>; KNOWN_SETTINGS as usize] = [None; KNOWN_SETTINGS as usize];
        for index in 0..count {
            let at = 8 + index * 6;
            let id = read_u16(payload, at)?;
            let value = read_u32(payload, at + 2)?;
            if id == 0 || id > KNOWN_SETTINGS {
                continue;
            }
            let slot = &mut values[usize::from(id - 1)];
            if slot.replace(value).is_some() {
                return Err(HandshakeError::DuplicateSetting(id));
            }
        }
        let required = |id: u16| values[usize::from(id - 1)].ok_or(HandshakeError::MissingSetting(id));
        let settings = Settings {
            initial_window: required(SETTING_INITIAL_WINDOW)?,
            max_frame_size: required(SETTING_MAX_FRAME_SIZE)?,
            max_streams: required(SETTING_MAX_STREAMS)?,
            keepalive_ms: values[usize::from(SETTING_KEEPALIVE_MS - 1)].unwrap_or(0),
            capabilities: values[usize::from(SETTING_CAPABILITIES - 1)].unwrap_or(0),
        };
        if settings.initial_window < MIN_INITIAL_WINDOW {
            return Err(HandshakeError::SettingOutOfRange {
                setting: "initial_window",
                value: settings.initial_window,
            });
        }
        if settings.max_streams == 0 {
            return Err(HandshakeError::SettingOutOfRange {
                setting: "max_streams",
                value: 0,
            });
        }
        if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&settings.max_frame_size) {
            return Err(HandshakeError::SettingOutOfRange {
                setting: "max_frame_size",
                value: settings.max_frame_size,
            });
        }
        Ok(settings)
    }
}

fn read_u16(payload: &[u8], at: usize) -> Result<u16, HandshakeError> {
    match payload.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(HandshakeError::Truncated),
    }
}

fn read_u32(payload: &[u8], at: usize) -> Result<u32, HandshakeError> {
    match payload.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(HandshakeError::Truncated),
    }
}

/// Why a native handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The first frame from the peer was not a hello.
    ExpectedHello,
    /// A second hello arrived.
    DuplicateHello,
    /// The hello payload does not start with `HWSR`: the peer is not hawser.
    BadMagic,
    /// The peer speaks a native revision this implementation does not.
    UnsupportedRevision(u16),
    /// The hello payload ends early or has trailing bytes.
    Truncated,
    /// The hello payload is larger than [`MAX_HELLO_LEN`].
    TooLong(u32),
    /// A required setting is absent.
    MissingSetting(u16),
    /// A setting appears twice.
    DuplicateSetting(u16),
    /// A setting's value is outside the range this implementation accepts.
    SettingOutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// The value the peer announced.
        value: u32,
    },
    /// No hello arrived within the configured handshake timeout.
    Timeout,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::ExpectedHello => f.write_str("the peer's first frame was not a hello"),
            HandshakeError::DuplicateHello => f.write_str("the peer sent a second hello"),
            HandshakeError::BadMagic => f.write_str("the peer's hello has the wrong magic: not a hawser peer"),
            HandshakeError::UnsupportedRevision(rev) => {
                write!(
                    f,
                    "the peer speaks native revision {rev}, this side speaks {NATIVE_REVISION}"
                )
            }
            HandshakeError::Truncated => f.write_str("the peer's hello is malformed (wrong length)"),
            HandshakeError::TooLong(len) => write!(f, "the peer's hello is {len} bytes, more than {MAX_HELLO_LEN}"),
            HandshakeError::MissingSetting(id) => write!(f, "the peer's hello lacks setting {id}"),
            HandshakeError::DuplicateSetting(id) => write!(f, "the peer's hello repeats setting {id}"),
            HandshakeError::SettingOutOfRange { setting, value } => {
                write!(f, "the peer's {setting} of {value} is out of range")
            }
            HandshakeError::Timeout => f.write_str("no hello from the peer within the handshake timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Settings {
        Settings {
            initial_window: 256 * 1024,
            max_frame_size: 64 * 1024,
            max_streams: 512,
            keepalive_ms: 30_000,
            capabilities: 0,
        }
    }

    #[test]
    fn settings_round_trip() {
        assert_eq!(Settings::decode(&sample().encode()), Ok(sample()));
    }

    #[test]
    fn unknown_settings_are_skipped() {
        let mut payload = sample().encode();
        payload[7] += 1;
        payload.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 9]);
        assert_eq!(Settings::decode(&payload), Ok(sample()));
    }

    #[test]
    fn malformed_hellos_are_refused_with_a_reason() {
        let good = sample().encode();
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(Settings::decode(&magic), Err(HandshakeError::BadMagic));
        let mut revision = good.clone();
        revision[5] = 9;
        assert_eq!(Settings::decode(&revision), Err(HandshakeError::UnsupportedRevision(9)));
        assert_eq!(
            Settings::decode(&good[..good.len() - 1]),
            Err(HandshakeError::Truncated)
        );
        let mut duplicate = good.clone();
        duplicate[7] += 1;
        duplicate.extend_from_slice(&[0, 1, 0, 4, 0, 0]);
        assert_eq!(Settings::decode(&duplicate), Err(HandshakeError::DuplicateSetting(1)));
        let small_window = Settings {
            initial_window: 10,
            ..sample()
        };
        assert!(matches!(
            Settings::decode(&small_window.encode()),
            Err(HandshakeError::SettingOutOfRange {
                setting: "initial_window",
                ..
            })
        ));
    }

    #[test]
    fn every_prefix_of_a_hello_is_an_error_not_a_panic() {
        let good = sample().encode();
        for len in 0..good.len() {
            assert!(Settings::decode(&good[..len]).is_err());
        }
    }
}
