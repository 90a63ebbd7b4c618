//! The frame codec: the 12-byte header shared by both profiles, with strict
//! validation. Pure encode/decode; no session state.
//!
//! ```text
//! 0        1        2               4                               8                              12
//! +--------+--------+---------------+-------------------------------+-------------------------------+
//! | version|  type  |     flags     |           stream id           |            length             |
//! +--------+--------+---------------+-------------------------------+-------------------------------+
//! ```
//! All fields are big-endian. See `PROTOCOL.md` for the meaning of each field.

use core::fmt;

/// Size of every frame header on the wire.
pub const HEADER_LEN: usize = 12;

/// The wire profile a session speaks; it is also the value of the header's
/// version byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Version 0: byte-for-byte yamux, for libp2p, go-yamux and hashicorp/yamux peers.
    Yamux,
    /// Version 1: hawser to hawser, with a handshake, reset and go-away codes.
    Native,
}

impl Profile {
    /// The header version byte of this profile.
    pub const fn version(self) -> u8 {
        match self {
            Profile::Yamux => 0,
            Profile::Native => 1,
        }
    }
}

/// The frame type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Stream payload; `length` bytes follow the header.
    Data,
    /// Grants `length` more bytes of send window; also carries SYN/ACK/FIN/RST.
    WindowUpdate,
    /// Ping request (SYN) or reply (ACK); `length` is an opaque value echoed back.
    Ping,
    /// The sender will accept no new streams; `length` is the go-away code.
    GoAway,
    /// Native only: the handshake hello; `length` bytes of settings follow.
    Hello,
    /// Native only, resumption: a cumulative acknowledgement; 8 bytes follow (the
    /// received offset, big-endian).
    Ack,
    /// Native only, resumption: the server's ticket (no flags), a resume request
    /// (SYN) or the server's answer (ACK); see `PROTOCOL.md`.
    Resume,
    /// Native only: a reset (stream id ≠ 0) or a go-away (stream id 0) with a
    /// reason: `length` bytes follow, a 4-byte code and up to
    /// [`MAX_REASON`] bytes of UTF-8.
    Reason,
}

/// The longest reason a [`FrameType::Reason`] frame may carry, in bytes.
pub const MAX_REASON: usize = 256;

impl FrameType {
    /// The wire value of this type.
    pub const fn to_u8(self) -> u8 {
        match self {
            FrameType::Data => 0,
            FrameType::WindowUpdate => 1,
            FrameType::Ping => 2,
            FrameType::GoAway => 3,
            FrameType::Hello => 4,
            FrameType::Ack => 5,
            FrameType::Resume => 6,
            FrameType::Reason => 7,
        }
    }

    fn from_u8(value: u8, profile: Profile) -> Option<Self> {
        match (value, profile) {
            (0, _) => Some(FrameType::Data),
            (1, _) => Some(FrameType::WindowUpdate),
            (2, _) => Some(FrameType::Ping),
            (3, _) => Some(FrameType::GoAway),
            (4, Profile::Native) => Some(FrameType::Hello),
            (5, Profile::Native) => Some(FrameType::Ack),
            (6, Profile::Native) => Some(FrameType::Resume),
            (7, Profile::Native) => Some(FrameType::Reason),
            _ => None,
        }
    }
}

/// The header's flag bits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// Opens a stream, or marks a ping request.
    pub const SYN: Flags = Flags(0x1);
    /// Acknowledges a stream open, or marks a ping reply.
    pub const ACK: Flags = Flags(0x2);
    /// Half-closes the sender's direction of a stream.
    pub const FIN: Flags = Flags(0x4);
    /// Resets a stream in both directions.
    pub const RST: Flags = Flags(0x8);
    const KNOWN: u16 = 0xf;

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Flags from raw bits, unknown bits included.
    pub const fn from_bits(bits: u16) -> Self {
        Flags(bits)
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self` with the bits of `other` set too.
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

impl core::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.with(rhs);
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Flags::SYN, "SYN"),
            (Flags::ACK, "ACK"),
            (Flags::FIN, "FIN"),
            (Flags::RST, "RST"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if self.0 & !Flags::KNOWN != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{:#x}", self.0 & !Flags::KNOWN)?;
            first = false;
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame type.
    pub ty: FrameType,
    /// The flag bits.
    pub flags: Flags,
    /// The stream the frame belongs to; 0 for session frames.
    pub stream_id: u32,
    /// Payload length (Data, Hello, Ack, Resume), window delta (WindowUpdate),
    /// opaque value (Ping), go-away code (GoAway), or reset code (native
    /// WindowUpdate with RST).
    pub length: u32,
}

impl Header {
    /// A header with the given fields.
    pub const fn new(ty: FrameType, flags: Flags, stream_id: u32, length: u32) -> Self {
        Header {
            ty,
            flags,
            stream_id,
            length,
        }
    }

    /// The 12 wire bytes of this header in `profile`.
    pub fn encode(&self, profile: Profile) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = profile.version();
        out[1] = self.ty.to_u8();
        out[2..4].copy_from_slice(&self.flags.bits().to_be_bytes());
        out[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Decodes and validates a header received in a session speaking `profile`.
    ///
    /// Validation covers everything that can be judged from the header alone:
    /// version, type, flag bits, which types belong on stream 0, and ping flags.
    /// Length limits depend on session state and are checked by the session.
    pub fn decode(bytes: &[u8; HEADER_LEN], profile: Profile) -> Result<Header, FrameError> {
        let version = bytes[0];
        if version != profile.version() {
            return Err(FrameError::Version {
                expected: profile.version(),
                got: version,
            });
        }
        let ty = FrameType::from_u8(bytes[1], profile).ok_or(FrameError::UnknownType(bytes[1]))?;
        let flags = Flags::from_bits(u16::from_be_bytes([bytes[2], bytes[3]]));
        let stream_id = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let length = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        // yamux peers in the wild never set other bits, but the spec does not forbid
        // them; only the native profile, which we define, rejects them.
        if profile == Profile::Native && flags.bits() & !Flags::KNOWN != 0 {
            return Err(FrameError::UnknownFlags(flags.bits()));
        }
        match ty {
            FrameType::Data | FrameType::WindowUpdate => {
                if stream_id == 0 {
                    return Err(FrameError::SessionStreamId(ty));
                }
            }
            FrameType::Ping | FrameType::GoAway | FrameType::Hello | FrameType::Ack | FrameType::Resume => {
                if stream_id != 0 {
                    return Err(FrameError::StreamIdOnSessionFrame(ty));
                }
            }
            // Either: the stream id says whether it resets a stream or goes away.
            FrameType::Reason => {}
        }
        if ty == FrameType::Ping && flags.contains(Flags::SYN) == flags.contains(Flags::ACK) {
            return Err(FrameError::PingFlags(flags));
        }
        Ok(Header {
            ty,
            flags,
            stream_id,
            length,
        })
    }
}

/// A header that no valid peer would send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The version byte is not the session's profile.
    Version {
        /// The version this session speaks.
        expected: u8,
        /// The version byte received.
        got: u8,
    },
    /// The type byte is not a known frame type for this profile.
    UnknownType(u8),
    /// Native profile: flag bits outside SYN/ACK/FIN/RST were set.
    UnknownFlags(u16),
    /// A stream frame (Data, WindowUpdate) named stream 0.
    SessionStreamId(FrameType),
    /// A session frame (Ping, GoAway, Hello, Ack, Resume) named a stream other than 0.
    StreamIdOnSessionFrame(FrameType),
    /// A ping must carry exactly one of SYN (request) and ACK (reply).
    PingFlags(Flags),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Version { expected, got } => {
                write!(f, "frame version {got}, expected {expected}")?;
                if *expected == 1 && *got == 0 {
                    f.write_str(" (the peer speaks the yamux profile)")?;
                } else if *expected == 0 && *got == 1 {
                    f.write_str(" (the peer speaks the hawser native profile)")?;
                }
                Ok(())
            }
            FrameError::UnknownType(ty) => write!(f, "unknown frame type {ty}"),
            FrameError::UnknownFlags(bits) => write!(f, "unknown flag bits {bits:#06x}"),
            FrameError::SessionStreamId(ty) => write!(f, "{ty:?} frame on stream 0"),
            FrameError::StreamIdOnSessionFrame(ty) => write!(f, "{ty:?} frame on a stream other than 0"),
            FrameError::PingFlags(flags) => write!(f, "ping with flags {flags:?}: needs exactly one of SYN, ACK"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_both_profiles() {
        let header = Header::new(FrameType::WindowUpdate, Flags::SYN | Flags::ACK, 7, 262_144);
        for profile in [Profile::Yamux, Profile::Native] {
            let bytes = header.encode(profile);
            assert_eq!(bytes[0], profile.version());
            assert_eq!(Header::decode(&bytes, profile), Ok(header));
        }
    }

    #[test]
    fn header_layout_is_the_yamux_layout() {
        let bytes = Header::new(FrameType::Data, Flags::FIN, 0x0102_0304, 0x0a0b_0c0d).encode(Profile::Yamux);
        assert_eq!(bytes, [0, 0, 0, 4, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
    }

    #[test]
    fn wrong_version_names_the_peer_profile() {
        let bytes = Header::new(FrameType::Ping, Flags::SYN, 0, 1).encode(Profile::Yamux);
        let err = Header::decode(&bytes, Profile::Native).unwrap_err();
        assert_eq!(err, FrameError::Version { expected: 1, got: 0 });
        assert!(alloc::format!("{err}").contains("yamux profile"));
    }

    #[test]
    fn hello_is_native_only() {
        let bytes = Header::new(FrameType::Hello, Flags::NONE, 0, 10).encode(Profile::Yamux);
        assert_eq!(Header::decode(&bytes, Profile::Yamux), Err(FrameError::UnknownType(4)));
    }

    #[test]
    fn stream_ids_must_match_the_frame_kind() {
        let data0 = Header::new(FrameType::Data, Flags::NONE, 0, 1).encode(Profile::Yamux);
        assert_eq!(
            Header::decode(&data0, Profile::Yamux),
            Err(FrameError::SessionStreamId(FrameType::Data))
        );
        let ping3 = Header::new(FrameType::Ping, Flags::SYN, 3, 1).encode(Profile::Yamux);
        assert_eq!(
            Header::decode(&ping3, Profile::Yamux),
            Err(FrameError::StreamIdOnSessionFrame(FrameType::Ping))
        );
    }

    #[test]
    fn ping_needs_exactly_one_of_syn_and_ack() {
        for flags in [Flags::NONE, Flags::SYN | Flags::ACK] {
            let bytes = Header::new(FrameType::Ping, flags, 0, 1).encode(Profile::Native);
            assert_eq!(
                Header::decode(&bytes, Profile::Native),
                Err(FrameError::PingFlags(flags))
            );
        }
    }

    #[test]
    fn unknown_flags_are_rejected_only_in_native() {
        let header = Header::new(FrameType::Data, Flags::from_bits(0x10), 1, 0);
        assert!(Header::decode(&header.encode(Profile::Yamux), Profile::Yamux).is_ok());
        assert_eq!(
            Header::decode(&header.encode(Profile::Native), Profile::Native),
            Err(FrameError::UnknownFlags(0x10))
        );
    }

    #[test]
    fn every_byte_pattern_decodes_or_errors() {
        // An exhaustive sweep over the bytes that carry meaning: whatever decodes
        // re-encodes to the same bytes, and nothing panics.
        for version in 0..=2u8 {
            for ty in 0..=6u8 {
                for flags in 0..=0x1fu16 {
                    let mut bytes = [0u8; HEADER_LEN];
                    bytes[0] = version;
                    bytes[1] = ty;
                    bytes[2..4].copy_from_slice(&flags.to_be_bytes());
                    bytes[7] = (flags & 1) as u8;
                    for profile in [Profile::Yamux, Profile::Native] {
                        if let Ok(header) = Header::decode(&bytes, profile) {
                            assert_eq!(header.encode(profile), bytes, "decode must be lossless");
                        }
                    }
                }
            }
        }
    }
}
