//! Session resumption (native profile): the types a server's acceptor and a
//! client's reconnect loop handle.
//!
//! A resumable session survives the loss of its link. Each side numbers the bytes
//! of the frames it sends after its hello as one sequence, keeps the part the peer
//! has not acknowledged in a bounded replay buffer, and acknowledges what it
//! receives. When the link is lost both sides stay alive ("detached"). The client
//! dials a new link and [`Session::attach`](crate::Session::attach)es to it: its
//! first frame is a [`ResumeRequest`] carrying the session id, the secret
//! [`ResumeToken`] and how much it has received. The server's acceptor reads that
//! frame with [`parse_opening`], finds the detached session by id and passes the
//! request to [`Session::handle_resume`](crate::Session::handle_resume), which
//! checks the token (in constant time) and the offset. Each side then replays what
//! the other has not received, and the decoders continue where they stopped, even
//! mid-frame. A refused attempt gets a go-away with a [`ResumeRefusal`] code on the
//! new link and leaves the session as it was.
//!
//! The token travels in the clear inside the ticket and the resume frames: anyone
//! who can read the link can resume the session. Run resumable sessions over an
//! encrypted link (TLS) wherever the path is not trusted.
//!
//! The server chooses the session id and token ([`Session::set_resume_ticket`](crate::Session::set_resume_ticket)),
//! and a new token on every resume, from entropy the caller supplies: the core has
//! no randomness of its own. Tokens are never logged (their `Debug` is redacted).

use alloc::vec::Vec;
use core::fmt;

use crate::error::GoAwayCode;
use crate::frame::{Flags, FrameType, Header, Profile, HEADER_LEN};
use crate::settings::{HELLO_MAGIC as MAGIC, NATIVE_REVISION as REVISION};

/// The secret that proves a resume request comes from the session's client: 128
/// bits of entropy the server's caller supplies. Compared in constant time; its
/// `Debug` output does not show it. It has no `==`, which could leak through
/// its timing where the first difference is: compare with
/// [`ct_eq`](Self::ct_eq).
#[derive(Clone, Copy)]
pub struct ResumeToken([u8; 16]);

impl ResumeToken {
    /// A token from 16 bytes of entropy (e.g. from `getrandom`).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        ResumeToken(bytes)
    }

    /// The token's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Equality that takes the same time wherever the first difference is.
    pub fn ct_eq(&self, other: &ResumeToken) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= a ^ b;
        }
        // A data dependency the optimiser cannot shortcut.
        core::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(..)")
    }
}

/// What a client needs to resume: the session's id (public, used to find the
/// session) and its current token (secret). Like the token, it has no `==`.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    /// Identifies the session at the server; not secret.
    pub id: u64,
    /// The secret; replaced on every resume.
    pub token: ResumeToken,
}

impl Ticket {
    pub(crate) const ENCODED_LEN: usize = 24;

    pub(crate) fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.id.to_be_bytes());
        out[8..].copy_from_slice(&self.token.0);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Ticket> {
        let (id, token) = bytes.split_first_chunk::<8>()?;
        Some(Ticket {
            id: u64::from_be_bytes(*id),
            token: ResumeToken(token.try_into().ok()?),
        })
    }
}

/// A client's request to resume a session over a new link: the first frame on
/// that link.
#[derive(Clone, Copy, Debug)]
pub struct ResumeRequest {
    /// The session to resume, and the token that proves the right to.
    pub ticket: Ticket,
    /// How many bytes of the server's sequence the client has received.
    pub received: u64,
}

impl ResumeRequest {
    /// Payload: magic (4), revision (2), reserved (2), id (8), token (16), offset (8).
    pub(crate) const PAYLOAD_LEN: usize = 40;

    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        let header = Header::new(FrameType::Resume, Flags::SYN, 0, Self::PAYLOAD_LEN as u32);
        let mut out = Vec::with_capacity(HEADER_LEN + Self::PAYLOAD_LEN);
        out.extend_from_slice(&header.encode(Profile::Native));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&REVISION.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.ticket.encode());
        out.extend_from_slice(&self.received.to_be_bytes());
        out
    }

    fn decode_payload(payload: &[u8]) -> Result<ResumeRequest, OpeningError> {
        if payload.len() != Self::PAYLOAD_LEN {
            return Err(OpeningError::Malformed);
        }
        let (magic, rest) = payload.split_first_chunk::<4>().ok_or(OpeningError::Malformed)?;
        let (revision, rest) = rest.split_first_chunk::<2>().ok_or(OpeningError::Malformed)?;
        let (_reserved, rest) = rest.split_first_chunk::<2>().ok_or(OpeningError::Malformed)?;
        let (ticket, received) = rest
            .split_at_checked(Ticket::ENCODED_LEN)
            .ok_or(OpeningError::Malformed)?;
        if *magic != MAGIC {
            return Err(OpeningError::Malformed);
        }
        let revision = u16::from_be_bytes(*revision);
        if revision != REVISION {
            return Err(OpeningError::Revision(revision));
        }
        let ticket = Ticket::decode(ticket).ok_or(OpeningError::Malformed)?;
        let received = u64::from_be_bytes(received.try_into().map_err(|_| OpeningError::Malformed)?);
        Ok(ResumeRequest { ticket, received })
    }
}

/// How a new link begins, as the server's acceptor sees it.
#[derive(Clone, Copy, Debug)]
pub enum Opening {
    /// A hello: a new session. Feed every byte read so far, from the first, to a
    /// new server session.
    Hello,
    /// A resume request. The frame is `consumed` bytes long; bytes after it
    /// belong to the resumed session.
    Resume {
        /// The request.
        request: ResumeRequest,
        /// Length of the request frame.
        consumed: usize,
    },
}

/// A new link's first bytes are neither a hello nor a resume request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpeningError {
    /// Not a native-profile frame of either kind.
    NotNative,
    /// A resume request of another protocol revision.
    Revision(u16),
    /// A resume frame with the wrong length, flags or magic.
    Malformed,
}

impl fmt::Display for OpeningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpeningError::NotNative => f.write_str("the link does not start with a hello or a resume request"),
            OpeningError::Revision(got) => write!(f, "resume request of revision {got}, expected {REVISION}"),
            OpeningError::Malformed => f.write_str("malformed resume request"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OpeningError {}

/// Classifies a new link from its first bytes: `Ok(None)` means more bytes are
/// needed (at most 52 in all).
pub fn parse_opening(bytes: &[u8]) -> Result<Option<Opening>, OpeningError> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let head: &[u8; HEADER_LEN] = head.try_into().map_err(|_| OpeningError::NotNative)?;
    let header = Header::decode(head, Profile::Native).map_err(|_| OpeningError::NotNative)?;
    match header.ty {
        FrameType::Hello => Ok(Some(Opening::Hello)),
        FrameType::Resume if header.flags == Flags::SYN => {
            if header.length as usize != ResumeRequest::PAYLOAD_LEN {
                return Err(OpeningError::Malformed);
            }
            let end = HEADER_LEN + ResumeRequest::PAYLOAD_LEN;
            let Some(payload) = bytes.get(HEADER_LEN..end) else {
                return Ok(None);
            };
            let request = ResumeRequest::decode_payload(payload)?;
            Ok(Some(Opening::Resume { request, consumed: end }))
        }
        _ => Err(OpeningError::NotNative),
    }
}

/// Why a server refused to resume a session. Each is sent to the client as the
/// go-away code [`code`](Self::code) on the new link, which is then closed.
///
/// An unknown id, a wrong or outdated token and a session that has ended all
/// get the same answer, [`NoSuchSession`](Self::NoSuchSession): a refusal must
/// not tell someone guessing which ids exist or which part of a guess was right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeRefusal {
    /// No resumable session with that id and token: it never existed, expired or
    /// ended, or the token is wrong or was already replaced.
    NoSuchSession,
    /// The client claims to have received more than the server sent, or less than
    /// it has already acknowledged (only after the token was accepted).
    BadOffset,
    /// The request is malformed or of another protocol revision.
    BadRequest,
    /// Too many failed attempts lately from this source or for this id; the
    /// request was not looked at. Retry later.
    RateLimited,
}

impl ResumeRefusal {
    /// The go-away code that carries this refusal.
    pub const fn code(self) -> GoAwayCode {
        match self {
            ResumeRefusal::NoSuchSession => GoAwayCode::RESUME_NO_SUCH_SESSION,
            ResumeRefusal::BadOffset => GoAwayCode::RESUME_BAD_OFFSET,
            ResumeRefusal::BadRequest => GoAwayCode::HANDSHAKE_FAILED,
            ResumeRefusal::RateLimited => GoAwayCode::RESUME_RATE_LIMITED,
        }
    }

    /// The go-away frame to write on the refused link before closing it.
    pub fn frame(self) -> [u8; HEADER_LEN] {
        Header::new(FrameType::GoAway, Flags::NONE, 0, self.code().0).encode(Profile::Native)
    }

    /// Whether the same client may usefully try again later (only [`RateLimited`](Self::RateLimited)).
    pub const fn is_retryable(self) -> bool {
        matches!(self, ResumeRefusal::RateLimited)
    }
}

impl fmt::Display for ResumeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResumeRefusal::NoSuchSession => "no resumable session with that id and token",
            ResumeRefusal::BadOffset => "the received offset does not match what was sent",
            ResumeRefusal::BadRequest => "malformed resume request or other protocol revision",
            ResumeRefusal::RateLimited => "too many failed resume attempts; try again later",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ResumeRefusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_and_never_print() {
        let a = ResumeToken::from_bytes([7; 16]);
        let mut other = [7; 16];
        other[15] = 8;
        assert!(a.ct_eq(&ResumeToken::from_bytes([7; 16])));
        assert!(!a.ct_eq(&ResumeToken::from_bytes(other)));
        assert_eq!(alloc::format!("{a:?}"), "ResumeToken(..)");
    }

    #[test]
    fn a_request_round_trips_through_parse_opening() {
        let request = ResumeRequest {
            ticket: Ticket {
                id: 42,
                token: ResumeToken::from_bytes([9; 16]),
            },
            received: 1 << 40,
        };
        let bytes = request.encode();
        for cut in 0..bytes.len() {
            // `cut` < `bytes.len()`: the slice is in bounds.
            assert!(matches!(parse_opening(&bytes[..cut]), Ok(None)), "cut at {cut}");
        }
        let opening = parse_opening(&bytes);
        let parsed = match opening {
            Ok(Some(Opening::Resume {
                request: parsed,
                consumed,
            })) if consumed == bytes.len() => Some(parsed),
            _ => None,
        };
        assert!(parsed.is_some(), "parsed as {opening:?}");
        let parsed = parsed.unwrap_or(request);
        assert_eq!((parsed.ticket.id, parsed.received), (42, 1 << 40));
        assert!(parsed.ticket.token.ct_eq(&request.ticket.token));
    }

    #[test]
    fn another_revision_is_refused_clearly() {
        let mut bytes = ResumeRequest {
            ticket: Ticket {
                id: 1,
                token: ResumeToken::from_bytes([0; 16]),
            },
            received: 0,
        }
        .encode();
        bytes[HEADER_LEN + 5] = 9;
        assert!(matches!(parse_opening(&bytes), Err(OpeningError::Revision(9))));
        let yamux = Header::new(FrameType::Data, Flags::SYN, 1, 0).encode(Profile::Yamux);
        assert!(matches!(parse_opening(&yamux), Err(OpeningError::NotNative)));
    }
}
