//! What the request/response helpers of every adapter share (PROTOCOL.md 8.1):
//! their limits, and how a bad message is reported to each side.

use std::io;

use hawser_core::ResetCode;

/// The length prefix of a message: 4 bytes, big-endian.
pub const MESSAGE_PREFIX: usize = 4;

/// Limits of the request/response helpers (`request_with` and
/// `serve_requests` in every adapter; PROTOCOL.md 8.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// The longest message either side takes (1 MiB by default); a longer one
    /// is refused with [`ResetCode::MESSAGE_TOO_LARGE`] before it is read.
    pub max_message: usize,
    /// `serve_requests`: how many requests are handled at once (64 by
    /// default); further streams wait in the session's accept backlog. A
    /// request in hand may hold up to `max_message` bytes as it arrives, so a
    /// session's requests hold at most `concurrency × max_message`.
    pub concurrency: usize,
    /// `serve_requests`: how long a request may take to arrive whole (30 s by
    /// default); a slower one is reset with `CANCEL`, so that peers trickling
    /// requests cannot hold every handler slot.
    pub read_timeout: std::time::Duration,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            max_message: 1024 * 1024,
            concurrency: 64,
            read_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Why reading a request or an answer failed, and the reset that tells the
/// peer.
pub enum MessageError {
    /// Longer than the maximum.
    TooLarge,
    /// Cut short, or followed by more.
    Malformed,
    /// The stream failed.
    Io(io::Error),
}

impl MessageError {
    /// The reset that tells the peer, if any.
    pub fn code(&self) -> Option<ResetCode> {
        match self {
            MessageError::TooLarge => Some(ResetCode::MESSAGE_TOO_LARGE),
            MessageError::Malformed => Some(ResetCode::MALFORMED_MESSAGE),
            // The stream itself failed (reset, session gone): nothing to tell.
            MessageError::Io(_) => None,
        }
    }

    /// The error the caller sees.
    pub fn into_io(self, max_message: usize) -> io::Error {
        match self {
            MessageError::TooLarge => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the message is longer than the {max_message}-byte maximum"),
            ),
            MessageError::Malformed => io::Error::new(
                io::ErrorKind::InvalidData,
                "the message was cut short, or more followed it",
            ),
            MessageError::Io(err) => err,
        }
    }
}

impl RequestOptions {
    /// Refuses a request longer than `max_message` before anything is sent.
    pub fn check_request(&self, len: usize) -> io::Result<()> {
        if len > self.max_message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {len}-byte request is longer than the {}-byte maximum",
                    self.max_message
                ),
            ));
        }
        Ok(())
    }

    /// What a responder does with its handler's outcome: send the answer, or
    /// reset with a code (`MESSAGE_TOO_LARGE` for an answer past the maximum).
    pub fn reply<T: AsRef<[u8]>>(&self, outcome: Result<T, ResetCode>) -> Result<T, ResetCode> {
        match outcome {
            Ok(answer) if answer.as_ref().len() > self.max_message => {
                tracing::warn!(
                    len = answer.as_ref().len(),
                    max_message = self.max_message,
                    "an answer longer than the maximum"
                );
                Err(ResetCode::MESSAGE_TOO_LARGE)
            }
            other => other,
        }
    }
}

impl MessageError {
    /// A responder's view of a request it could not read: the reset to send,
    /// if any (a stream that failed by itself is only logged).
    pub fn responder_reset(self, max_message: usize) -> Option<ResetCode> {
        let code = self.code();
        if code.is_none() {
            tracing::debug!(err = %self.into_io(max_message), "a request failed");
        }
        code
    }
}
