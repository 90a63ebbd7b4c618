//! What the request/response helpers of every adapter share (PROTOCOL.md 8.1):
//! their limits, and how a bad message is reported to each side.

use std::future::{poll_fn, Future};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_core::ResetCode;

use crate::permits::Permits;
use crate::runtime::{timeout as within, Runtime};
use crate::session::{Control, Session};
use crate::stream::StreamCore;

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

/// Fills `buf` from `stream`; `Ok(false)` if the stream ended first.
async fn fill(stream: &mut StreamCore, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match poll_fn(|cx| stream.poll_read(cx, &mut buf[filled..])).await? {
            0 => return Ok(false),
            n => filled += n,
        }
    }
    Ok(true)
}

/// Reads the one message of `stream`, then its end. The message's buffer is
/// allocated only once its length is known to be within `max_message`.
async fn read_message(stream: &mut StreamCore, max_message: usize) -> Result<Bytes, MessageError> {
    let mut prefix = [0u8; MESSAGE_PREFIX];
    if !fill(stream, &mut prefix).await.map_err(MessageError::Io)? {
        return Err(MessageError::Malformed);
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max_message {
        return Err(MessageError::TooLarge);
    }
    let mut message = vec![0u8; len];
    if !fill(stream, &mut message).await.map_err(MessageError::Io)? {
        return Err(MessageError::Malformed);
    }
    // One message per direction: the stream must end right after it.
    if fill(stream, &mut [0u8; 1]).await.map_err(MessageError::Io)? {
        return Err(MessageError::Malformed);
    }
    Ok(Bytes::from(message))
}

/// Writes `message` as the stream's one message and finishes the stream.
async fn write_message(stream: &mut StreamCore, message: &Bytes) -> io::Result<()> {
    let len =
        u32::try_from(message.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    let prefix = Bytes::copy_from_slice(&len.to_be_bytes());
    for part in [&prefix, message] {
        let mut written = 0;
        while written < part.len() {
            let rest = part.slice(written..);
            match poll_fn(|cx| stream.poll_write_bytes(cx, &rest)).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => written += n,
            }
        }
    }
    poll_fn(|cx| stream.poll_finish(cx)).await
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
}

impl<R: Runtime> Control<R> {
    /// Sends `message` on a new stream and returns the answer, waiting at most
    /// `timeout` in all (open, send, answer), with the default
    /// [`RequestOptions`]. A responder that failed shows as an error whose
    /// [`reset_code`](crate::reset_code) is the code it chose. The bytes on
    /// the stream are those of PROTOCOL.md 8.1 (a 4-byte big-endian length,
    /// then the message), the same in every adapter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hawser_tokio::{Config, Listener, RequestOptions, Session};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn(async move {
    ///     let (session, _) = listener.accept().await?;
    ///     // Answers every request with its bytes reversed.
    ///     session
    ///         .serve_requests(RequestOptions::default(), |request| async move {
    ///             Ok(request.iter().rev().copied().collect::<Vec<u8>>().into())
    ///         })
    ///         .await
    /// });
    /// let session = Session::connect(addr, Config::default()).await?;
    /// let answer = session.request("ping", Duration::from_secs(5)).await?;
    /// assert_eq!(&answer[..], b"gnip");
    /// # Ok(()) }
    /// ```
    pub fn request(
        &self,
        message: impl Into<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<Bytes>> + Send + '_ {
        let message = message.into();
        async move { self.request_with(message, timeout, &RequestOptions::default()).await }
    }

    /// [`request`](Self::request) with limits of its own: a request or an
    /// answer longer than `options.max_message` is refused (the request before
    /// anything is sent, with `InvalidInput`).
    pub fn request_with<'a>(
        &'a self,
        message: impl Into<Bytes>,
        timeout: Duration,
        options: &'a RequestOptions,
    ) -> impl Future<Output = io::Result<Bytes>> + Send + 'a {
        let message = message.into();
        async move {
            let max_message = options.max_message;
            options.check_request(message.len())?;
            let started = Instant::now();
            let mut stream = within::<R, _>(timeout, self.open_stream_core())
                .await
                .ok_or_else(timed_out)??;
            let left = timeout.saturating_sub(started.elapsed());
            let exchange = async {
                write_message(&mut stream, &message).await.map_err(MessageError::Io)?;
                read_message(&mut stream, max_message).await
            };
            match within::<R, _>(left, exchange).await {
                Some(Ok(answer)) => Ok(answer),
                Some(Err(err)) => {
                    if let Some(code) = err.code() {
                        stream.reset(code);
                    }
                    Err(err.into_io(max_message))
                }
                None => {
                    // Stopped waiting: the responder learns so at once.
                    stream.reset(ResetCode::CANCEL);
                    Err(timed_out())
                }
            }
        }
    }
}

impl<R: Runtime> Session<R> {
    /// Answers every request that arrives on this session with `handler`, at
    /// most `options.concurrency` at once (each on a task of the runtime),
    /// until the session stops taking streams (it closed or is going away). A
    /// handler that returns `Err(code)` resets that request's stream with
    /// `code`; a request longer than `options.max_message`, or malformed, is
    /// reset without calling it. The session's inbound streams are all taken as
    /// requests.
    pub async fn serve_requests<H, F>(&self, options: RequestOptions, handler: H) -> io::Result<()>
    where
        H: Fn(Bytes) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Bytes, ResetCode>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let max_message = options.max_message;
        let permits = Permits::new(options.concurrency);
        loop {
            let permit = permits.acquire().await;
            let Some(mut stream) = self.accept_core().await else {
                return Ok(());
            };
            let handler = handler.clone();
            let options = options.clone();
            R::spawn(async move {
                // Handed back however the task ends (a handler may panic).
                let _permit = permit;
                let outcome = match within::<R, _>(options.read_timeout, read_message(&mut stream, max_message)).await {
                    Some(Ok(request)) => options.reply(handler(request).await),
                    Some(Err(err)) => Err(err.responder_reset(max_message).unwrap_or(ResetCode::CANCEL)),
                    None => Err(ResetCode::CANCEL),
                };
                match outcome {
                    Ok(answer) => {
                        if let Err(err) = write_message(&mut stream, &answer).await {
                            tracing::debug!(%err, "a request's answer could not be sent");
                        }
                    }
                    Err(code) => stream.reset(code),
                }
            });
        }
    }
}
