//! Request/response over a stream per exchange (PROTOCOL.md 8.1), blocking:
//! the requester writes one length-delimited message and finishes; the
//! responder answers with one and finishes. The same bytes as every hawser
//! adapter: a 4-byte big-endian length, then the message.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use hawser_core::ResetCode;
use hawser_driver::{MessageError, RequestOptions, MESSAGE_PREFIX};

use crate::session::Session;
use crate::stream::Stream;

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
}

/// The time left until `deadline` (`None`: no deadline), or `TimedOut`.
fn left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(at) => match at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(timed_out()),
        },
    }
}

/// Fills `buf` from `stream`; `Ok(false)` if the stream ended first.
fn fill(stream: &mut Stream, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.set_read_timeout(left(deadline)?);
        match stream.read(&mut buf[filled..])? {
            0 => return Ok(false),
            n => filled += n,
        }
    }
    Ok(true)
}

/// Reads the one message of `stream`, then its end.
fn read_message(stream: &mut Stream, max_message: usize, deadline: Option<Instant>) -> Result<Vec<u8>, MessageError> {
    let mut prefix = [0u8; MESSAGE_PREFIX];
    if !fill(stream, &mut prefix, deadline).map_err(MessageError::Io)? {
        return Err(MessageError::Malformed);
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max_message {
        return Err(MessageError::TooLarge);
    }
    let mut message = vec![0u8; len];
    if !fill(stream, &mut message, deadline).map_err(MessageError::Io)? {
        return Err(MessageError::Malformed);
    }
    // One message per direction: the stream must end right after it.
    let mut more = [0u8; 1];
    if fill(stream, &mut more, deadline).map_err(MessageError::Io)? {
        return Err(MessageError::Malformed);
    }
    Ok(message)
}

/// Writes `message` as the stream's one message and finishes the stream.
fn write_message(stream: &mut Stream, message: &[u8], deadline: Option<Instant>) -> io::Result<()> {
    let len =
        u32::try_from(message.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    for part in [&len.to_be_bytes()[..], message] {
        let mut written = 0;
        while written < part.len() {
            // Each write may wait only for what is left of the deadline.
            stream.set_write_timeout(left(deadline)?);
            match stream.write(&part[written..])? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => written += n,
            }
        }
    }
    stream.finish()
}

impl Session {
    /// Sends `message` on a new stream and returns the answer, waiting at most
    /// `timeout` in all (open, send, answer), with the default
    /// [`RequestOptions`]. A responder that failed shows as an error whose
    /// [`reset_code`](crate::reset_code) is the code it chose.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hawser_blocking::{Config, Listener, RequestOptions, Session};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let listener = Listener::bind("127.0.0.1:0", Config::default())?;
    /// let addr = listener.local_addr()?;
    /// std::thread::spawn(move || -> std::io::Result<()> {
    ///     let (session, _) = listener.accept()?;
    ///     // Answers every request with its bytes reversed.
    ///     session.serve_requests(RequestOptions::default(), |request| {
    ///         Ok(request.into_iter().rev().collect())
    ///     })
    /// });
    /// let session = Session::connect(addr, Config::default())?;
    /// let answer = session.request(b"ping", Duration::from_secs(5))?;
    /// assert_eq!(answer, b"gnip");
    /// # Ok(()) }
    /// ```
    pub fn request(&self, message: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        self.request_with(message, timeout, &RequestOptions::default())
    }

    /// [`request`](Self::request) with limits of its own: a request or an
    /// answer longer than `options.max_message` is refused (the request before
    /// anything is sent, with `InvalidInput`).
    pub fn request_with(&self, message: &[u8], timeout: Duration, options: &RequestOptions) -> io::Result<Vec<u8>> {
        let max_message = options.max_message;
        options.check_request(message.len())?;
        let deadline = Some(Instant::now() + timeout);
        let mut stream = self.open_stream_timeout(left(deadline)?)?;
        let outcome = write_message(&mut stream, message, deadline)
            .map_err(MessageError::Io)
            .and_then(|()| read_message(&mut stream, max_message, deadline));
        match outcome {
            Ok(answer) => Ok(answer),
            Err(MessageError::Io(err)) if err.kind() == io::ErrorKind::TimedOut => {
                // Stopped waiting: the responder learns so at once.
                stream.reset(ResetCode::CANCEL);
                Err(timed_out())
            }
            Err(err) => {
                if let Some(code) = err.code() {
                    stream.reset(code);
                }
                Err(err.into_io(max_message))
            }
        }
    }

    /// Answers every request that arrives on this session with `handler`, on
    /// `options.concurrency` threads, until the session stops taking streams
    /// (it closed or is going away). A handler that returns `Err(code)` resets
    /// that request's stream with `code`; a request longer than
    /// `options.max_message`, or malformed, is reset without calling it. The
    /// session's inbound streams are all taken as requests.
    pub fn serve_requests<H>(&self, options: RequestOptions, handler: H) -> io::Result<()>
    where
        H: Fn(Vec<u8>) -> Result<Vec<u8>, ResetCode> + Sync,
    {
        let handler = &handler;
        let options = &options;
        std::thread::scope(|scope| {
            for _ in 0..options.concurrency.max(1) {
                std::thread::Builder::new()
                    .name("hawser-requests".into())
                    .spawn_scoped(scope, move || {
                        while let Some(stream) = self.accept() {
                            answer(stream, options, handler);
                        }
                    })?;
            }
            Ok(())
        })
    }
}

/// Answers one request.
fn answer<H>(mut stream: Stream, options: &RequestOptions, handler: &H)
where
    H: Fn(Vec<u8>) -> Result<Vec<u8>, ResetCode>,
{
    let max_message = options.max_message;
    let deadline = Some(Instant::now() + options.read_timeout);
    let outcome = match read_message(&mut stream, max_message, deadline) {
        // A handler that panics costs its request, not the worker thread.
        Ok(request) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(request))) {
            Ok(outcome) => options.reply(outcome),
            Err(_) => {
                tracing::warn!("a request handler panicked");
                Err(ResetCode::CANCEL)
            }
        },
        Err(err) => Err(err.responder_reset(max_message).unwrap_or(ResetCode::CANCEL)),
    };
    match outcome {
        Ok(answer) => {
            if let Err(err) = write_message(&mut stream, &answer, None) {
                tracing::debug!(%err, "a request's answer could not be sent");
            }
        }
        Err(code) => stream.reset(code),
    }
}
