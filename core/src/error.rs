//! Error types, one per operation, plus the reasons a session ends.

use core::fmt;

use crate::frame::FrameError;
use crate::ids::StreamId;
pub use crate::ids::{GoAwayCode, ResetCode};
use crate::settings::HandshakeError;

/// A way the peer broke the protocol. The session answers each with a go-away and
/// closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A malformed frame header.
    Frame(FrameError),
    /// A Data frame larger than this side's max frame size (native profile).
    FrameTooLarge {
        /// The frame's payload length.
        length: u32,
        /// The largest payload accepted.
        max: u32,
    },
    /// A Data frame beyond the receive window the peer was granted.
    FlowControl {
        /// The stream.
        stream: StreamId,
        /// The frame's payload length.
        length: u32,
        /// The window the peer had left.
        window: u64,
    },
    /// A window update pushed a send window past 2^32 - 1.
    WindowOverflow(StreamId),
    /// A SYN named an id of this side's parity.
    WrongParity(StreamId),
    /// A SYN named a stream that is already open.
    StreamReuse(StreamId),
    /// Native: a frame for a stream that was never opened.
    UnknownStream(StreamId),
    /// Data after the peer had finished the stream.
    DataAfterFin(StreamId),
    /// The peer opened a stream after announcing go-away itself.
    OpenAfterGoAway(StreamId),
    /// The peer exceeded one of the [`Limits`](crate::Limits).
    LimitExceeded(&'static str),
    /// Resumption: a frame or value the resumption protocol does not allow here.
    Resumption(&'static str),
    /// Native: a Reason frame with flags, a length outside 4 ..= 260, or a
    /// reason that is not UTF-8.
    BadReason(&'static str),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(err) => write!(f, "malformed frame: {err}"),
            ProtocolError::BadReason(what) => write!(f, "malformed reason frame: {what}"),
            ProtocolError::FrameTooLarge { length, max } => {
                write!(f, "data frame of {length} bytes exceeds the max frame size {max}")
            }
            ProtocolError::FlowControl { stream, length, window } => write!(
                f,
                "data frame of {length} bytes on stream {stream} exceeds the remaining window of {window}"
            ),
            ProtocolError::WindowOverflow(id) => write!(f, "window update overflows the window of stream {id}"),
            ProtocolError::WrongParity(id) => write!(f, "peer opened stream {id}, which has this side's parity"),
            ProtocolError::StreamReuse(id) => write!(f, "peer reopened stream {id}"),
            ProtocolError::UnknownStream(id) => write!(f, "frame for stream {id}, which was never opened"),
            ProtocolError::DataAfterFin(id) => write!(f, "data on stream {id} after the peer finished it"),
            ProtocolError::OpenAfterGoAway(id) => write!(f, "peer opened stream {id} after its own go-away"),
            ProtocolError::LimitExceeded(what) => write!(f, "peer exceeded the limit on {what}"),
            ProtocolError::Resumption(what) => write!(f, "resumption: {what}"),
        }
    }
}

/// Why a session ended abnormally. The session's
/// [`close_reason`](crate::Session::close_reason) returns it, and every stream
/// operation after it returns a `SessionClosed` error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The peer broke the protocol; a go-away with an error code was sent.
    Protocol(ProtocolError),
    /// The native handshake failed.
    Handshake(HandshakeError),
    /// The peer sent a go-away with an error code.
    PeerGoAway(GoAwayCode),
    /// The peer missed `max_missed_pings` keepalive pings in a row.
    KeepaliveTimeout,
    /// The link was lost and the session cannot continue without it.
    LinkLost,
    /// This side closed the session with [`Session::close`](crate::Session::close).
    LocallyClosed(GoAwayCode),
    /// Resumption: the link was lost and no new link resumed the session within
    /// `detached_timeout`.
    Expired,
    /// Resumption: the server refused to resume the session, with this code (one
    /// of the `RESUME_*` go-away codes); it cannot be resumed.
    ResumeRefused(GoAwayCode),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Protocol(err) => write!(f, "protocol error: {err}"),
            SessionError::Handshake(err) => write!(f, "handshake failed: {err}"),
            SessionError::PeerGoAway(code) => write!(f, "the peer went away with error code {}", code.0),
            SessionError::KeepaliveTimeout => f.write_str("the peer stopped answering keepalive pings"),
            SessionError::LinkLost => f.write_str("the link was lost"),
            SessionError::LocallyClosed(code) => write!(f, "closed by this side with code {}", code.0),
            SessionError::Expired => f.write_str("the link was lost and the session expired before it was resumed"),
            SessionError::ResumeRefused(code) => {
                write!(f, "the server refused to resume the session (code {})", code.0)
            }
        }
    }
}

/// Why [`Session::open`](crate::Session::open) could not open a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// A limit is reached (max streams, unacknowledged opens, receive budget);
    /// an [`Event::CanOpen`](crate::Event::CanOpen) follows when it is worth retrying.
    Blocked,
    /// A go-away was sent or received: no new streams on this session.
    GoingAway,
    /// Every stream id of this side's parity has been used.
    IdsExhausted,
    /// The session has ended.
    SessionClosed,
}

/// Why a read returned no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing to read yet; an [`Event::Readable`](crate::Event::Readable) follows.
    Blocked,
    /// The stream was reset, by the peer or by this side's timers, with this code.
    Reset(ResetCode),
    /// No such stream: never opened, or already closed and released.
    UnknownStream,
    /// The session has ended.
    SessionClosed,
}

/// Why a write accepted no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The send buffers are full; an [`Event::Writable`](crate::Event::Writable) follows.
    Blocked,
    /// This side already finished the stream.
    Finished,
    /// The stream was reset with this code.
    Reset(ResetCode),
    /// No such stream.
    UnknownStream,
    /// The session has ended.
    SessionClosed,
}

/// Why [`Stream::finish`](crate::Stream::finish) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishError {
    /// The stream was already finished.
    Finished,
    /// The stream was reset with this code.
    Reset(ResetCode),
    /// No such stream.
    UnknownStream,
    /// The session has ended.
    SessionClosed,
}

/// Why [`Stream::reset`](crate::Stream::reset) or a session command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedError {
    /// No such stream.
    UnknownStream,
    /// The session has ended.
    SessionClosed,
}

/// Why [`Session::ping`](crate::Session::ping) sent nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingError {
    /// Too many pings are already in flight; retry after a `Pong` event or after
    /// the ping timeout, when unanswered pings are forgotten.
    Blocked,
    /// The session has ended.
    SessionClosed,
}

const CLOSED: &str = "the session is closed";
const UNKNOWN: &str = "unknown or released stream";
const FINISHED: &str = "the stream was already finished";

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::Blocked => "stream limit reached; retry after Event::CanOpen",
            OpenError::GoingAway => "the session is going away",
            OpenError::IdsExhausted => "stream ids exhausted",
            OpenError::SessionClosed => CLOSED,
        })
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Blocked => f.write_str("no data available yet"),
            ReadError::Reset(code) => write!(f, "stream reset: {code}"),
            ReadError::UnknownStream => f.write_str(UNKNOWN),
            ReadError::SessionClosed => f.write_str(CLOSED),
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Blocked => f.write_str("send buffer full"),
            WriteError::Finished => f.write_str(FINISHED),
            WriteError::Reset(code) => write!(f, "stream reset: {code}"),
            WriteError::UnknownStream => f.write_str(UNKNOWN),
            WriteError::SessionClosed => f.write_str(CLOSED),
        }
    }
}

impl fmt::Display for FinishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinishError::Finished => f.write_str(FINISHED),
            FinishError::Reset(code) => write!(f, "stream reset: {code}"),
            FinishError::UnknownStream => f.write_str(UNKNOWN),
            FinishError::SessionClosed => f.write_str(CLOSED),
        }
    }
}

impl fmt::Display for ClosedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClosedError::UnknownStream => UNKNOWN,
            ClosedError::SessionClosed => CLOSED,
        })
    }
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PingError::Blocked => "too many pings in flight",
            PingError::SessionClosed => CLOSED,
        })
    }
}

#[cfg(feature = "std")]
mod std_impls {
    use super::*;

    impl std::error::Error for SessionError {}
    impl std::error::Error for ProtocolError {}
    impl std::error::Error for FrameError {}
    impl std::error::Error for HandshakeError {}
    impl std::error::Error for OpenError {}
    impl std::error::Error for ReadError {}
    impl std::error::Error for WriteError {}
    impl std::error::Error for FinishError {}
    impl std::error::Error for ClosedError {}
    impl std::error::Error for PingError {}
    impl std::error::Error for crate::config::ConfigError {}

    fn io_kind_for_reset(code: ResetCode) -> std::io::ErrorKind {
        if code == ResetCode::REFUSED {
            std::io::ErrorKind::ConnectionRefused
        } else {
            std::io::ErrorKind::ConnectionReset
        }
    }

    impl From<ReadError> for std::io::Error {
        fn from(err: ReadError) -> Self {
            let kind = match err {
                ReadError::Blocked => std::io::ErrorKind::WouldBlock,
                ReadError::Reset(code) => io_kind_for_reset(code),
                ReadError::UnknownStream => std::io::ErrorKind::NotConnected,
                ReadError::SessionClosed => std::io::ErrorKind::ConnectionAborted,
            };
            std::io::Error::new(kind, err)
        }
    }

    impl From<WriteError> for std::io::Error {
        fn from(err: WriteError) -> Self {
            let kind = match err {
                WriteError::Blocked => std::io::ErrorKind::WouldBlock,
                WriteError::Finished => std::io::ErrorKind::BrokenPipe,
                WriteError::Reset(code) => io_kind_for_reset(code),
                WriteError::UnknownStream => std::io::ErrorKind::NotConnected,
                WriteError::SessionClosed => std::io::ErrorKind::ConnectionAborted,
            };
            std::io::Error::new(kind, err)
        }
    }

    impl From<SessionError> for std::io::Error {
        fn from(err: SessionError) -> Self {
            let kind = match err {
                SessionError::Protocol(_) | SessionError::Handshake(_) => std::io::ErrorKind::InvalidData,
                SessionError::KeepaliveTimeout => std::io::ErrorKind::TimedOut,
                SessionError::LinkLost | SessionError::PeerGoAway(_) | SessionError::Expired => {
                    std::io::ErrorKind::ConnectionReset
                }
                SessionError::ResumeRefused(_) => std::io::ErrorKind::ConnectionRefused,
                SessionError::LocallyClosed(_) => std::io::ErrorKind::ConnectionAborted,
            };
            std::io::Error::new(kind, err)
        }
    }
}
