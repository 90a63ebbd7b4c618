//! Reading hawser's answer out of an `io::Error`.
//!
//! Stream and session operations fail with `io::Error`s, so that streams fit
//! the I/O traits of every runtime. The error's kind says what happened in
//! general (`ConnectionReset`, `ConnectionRefused`, `TimedOut`,
//! `ConnectionAborted`); these functions give the exact answer, so that no
//! application has to depend on hawser-core and downcast in turn.

use std::io;

use hawser_core::{FinishError, ReadError, ResetCode, SessionError, WriteError};

/// The code the stream was reset with, if `err` reports a reset stream (by the
/// peer, or by this side's open, close or drain timers). [`ResetCode::REFUSED`]
/// means the peer did not take the stream (its backlog was full, it was going
/// away, or a limit was reached); in the yamux profile see `PROTOCOL.md` 4.6 for
/// what a refusal guarantees.
///
/// ```
/// use std::io;
/// use hawser_core::{ReadError, ResetCode};
/// use hawser_driver::reset_code;
///
/// let err: io::Error = ReadError::Reset(ResetCode(0x1234)).into();
/// assert_eq!(reset_code(&err), Some(ResetCode(0x1234)));
/// assert_eq!(reset_code(&io::Error::other("something else")), None);
/// ```
pub fn reset_code(err: &io::Error) -> Option<ResetCode> {
    let source = err.get_ref()?;
    if let Some(reset) = source.downcast_ref::<StreamReset>() {
        return Some(reset.code);
    }
    if let Some(ReadError::Reset(code)) = source.downcast_ref::<ReadError>() {
        return Some(*code);
    }
    if let Some(WriteError::Reset(code)) = source.downcast_ref::<WriteError>() {
        return Some(*code);
    }
    if let Some(FinishError::Reset(code)) = source.downcast_ref::<FinishError>() {
        return Some(*code);
    }
    None
}

/// The reason that came with the reset `err` reports, if the peer gave one
/// (native profile: see `ResetCode` and PROTOCOL.md 8.2).
///
/// ```
/// use std::io;
/// use hawser_driver::{reset_code, reset_reason};
///
/// let err = io::Error::other("not a reset");
/// assert_eq!((reset_code(&err), reset_reason(&err)), (None, None));
/// ```
pub fn reset_reason(err: &io::Error) -> Option<&str> {
    Some(&err.get_ref()?.downcast_ref::<StreamReset>()?.reason)
}

/// A stream reset with a reason: the source of the `io::Error` a stream
/// operation fails with when the reset came with one.
#[derive(Debug)]
struct StreamReset {
    code: ResetCode,
    reason: Box<str>,
}

impl std::fmt::Display for StreamReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream reset: {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for StreamReset {}

/// `err` (a reset, as a core error) as an `io::Error`, with `reason` when
/// there is one.
pub(crate) fn with_reason(err: impl Into<io::Error>, reason: &Option<Box<str>>) -> io::Error {
    let err = err.into();
    match (reset_code(&err), reason) {
        (Some(code), Some(reason)) => io::Error::new(
            err.kind(),
            StreamReset {
                code,
                reason: reason.clone(),
            },
        ),
        _ => err,
    }
}

/// Why the session ended, if `err` reports an operation on a session that ended
/// abnormally: a protocol or handshake error, the peer's go-away with an error
/// code, missed keepalives, a lost link, expiry, or a refused resume. A session
/// that ended in good order (both sides went away with `NORMAL`) makes
/// operations fail with `ConnectionAborted` and no session error.
///
/// A refused *stream* and a refused *resume* both have the kind
/// `ConnectionRefused`; [`reset_code`] answers for the first, this function (with
/// [`SessionError::ResumeRefused`]) for the second.
pub fn session_error(err: &io::Error) -> Option<SessionError> {
    err.get_ref()?.downcast_ref::<SessionError>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hawser_core::GoAwayCode;

    #[test]
    fn every_reset_carrier_gives_its_code() {
        let read: io::Error = ReadError::Reset(ResetCode::REFUSED).into();
        let write: io::Error = WriteError::Reset(ResetCode::CLOSE_TIMEOUT).into();
        let finish = io::Error::new(io::ErrorKind::ConnectionReset, FinishError::Reset(ResetCode(0x200)));
        assert_eq!(reset_code(&read), Some(ResetCode::REFUSED));
        assert_eq!(reset_code(&write), Some(ResetCode::CLOSE_TIMEOUT));
        assert_eq!(reset_code(&finish), Some(ResetCode(0x200)));
        assert_eq!(session_error(&read), None);
    }

    #[test]
    fn a_refused_resume_is_not_a_refused_stream() {
        let resume: io::Error = SessionError::ResumeRefused(GoAwayCode::RESUME_NO_SUCH_SESSION).into();
        let stream: io::Error = ReadError::Reset(ResetCode::REFUSED).into();
        assert_eq!(resume.kind(), stream.kind());
        assert_eq!(reset_code(&resume), None);
        assert_eq!(
            session_error(&resume),
            Some(SessionError::ResumeRefused(GoAwayCode::RESUME_NO_SUCH_SESSION))
        );
        assert_eq!(session_error(&stream), None);
        assert_eq!(reset_code(&stream), Some(ResetCode::REFUSED));
    }
}
