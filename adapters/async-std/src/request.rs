//! Request/response over a stream per exchange (PROTOCOL.md 8.1), over
//! futures-io: the requester writes one length-delimited message and finishes;
//! the responder answers with one and finishes. The same bytes as every hawser
//! adapter: a 4-byte big-endian length, then the message.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use hawser_core::ResetCode;
use hawser_driver::{MessageError, RequestOptions, MESSAGE_PREFIX};

use crate::session::Control;
#[cfg(feature = "async-std")]
use crate::session::Session;
use crate::stream::Stream;

/// Fills `buf`; `Ok(false)` if the stream ended first.
async fn fill(stream: &mut Stream, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf[filled..])).await? {
            0 => return Ok(false),
            n => filled += n,
        }
    }
    Ok(true)
}

/// Reads the one message of `stream`, then its end.
async fn read_message(stream: &mut Stream, max_message: usize) -> Result<Vec<u8>, MessageError> {
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
    Ok(message)
}

/// Writes `message` as the stream's one message and finishes the stream.
async fn write_message(stream: &mut Stream, message: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(message.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    for part in [&len.to_be_bytes()[..], message] {
        let mut written = 0;
        while written < part.len() {
            match poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, &part[written..])).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => written += n,
            }
        }
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_close(cx)).await
}

/// `future`, or `None` once `timeout` has passed.
async fn within<F: Future>(timeout: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = async_io::Timer::after(timeout);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        Pin::new(&mut timer).poll(cx).map(|_| None)
    })
    .await
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
}

impl Control {
    /// Sends `message` on a new stream and returns the answer, waiting at most
    /// `timeout` in all (open, send, answer), with the default
    /// [`RequestOptions`]. A responder that failed shows as an error whose
    /// [`reset_code`](crate::reset_code) is the code it chose.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hawser_async_std::{Config, Listener, RequestOptions, Session};
    ///
    /// # fn main() -> std::io::Result<()> { async_std::task::block_on(async {
    /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// async_std::task::spawn(async move {
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
    /// # Ok(()) }) }
    /// ```
    pub async fn request(&self, message: impl Into<Bytes>, timeout: Duration) -> io::Result<Bytes> {
        self.request_with(message, timeout, &RequestOptions::default()).await
    }

    /// [`request`](Self::request) with limits of its own: a request or an
    /// answer longer than `options.max_message` is refused (the request before
    /// anything is sent, with `InvalidInput`).
    pub async fn request_with(
        &self,
        message: impl Into<Bytes>,
        timeout: Duration,
        options: &RequestOptions,
    ) -> io::Result<Bytes> {
        let message = message.into();
        let max_message = options.max_message;
        options.check_request(message.len())?;
        let started = std::time::Instant::now();
        let mut stream = within(timeout, self.open_stream()).await.ok_or_else(timed_out)??;
        let left = timeout.saturating_sub(started.elapsed());
        let exchange = async {
            write_message(&mut stream, &message).await.map_err(MessageError::Io)?;
            read_message(&mut stream, max_message).await
        };
        match within(left, exchange).await {
            Some(Ok(answer)) => Ok(Bytes::from(answer)),
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

/// A concurrency token of `serve_requests`, handed back when dropped.
#[cfg(feature = "async-std")]
struct Token(async_std::channel::Receiver<()>);

#[cfg(feature = "async-std")]
impl Drop for Token {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

#[cfg(feature = "async-std")]
impl Session {
    /// Answers every request that arrives on this session with `handler`, at
    /// most `options.concurrency` at once (each on an async-std task), until
    /// the session stops taking streams (it closed or is going away). A handler
    /// that returns `Err(code)` resets that request's stream with `code`; a
    /// request longer than `options.max_message`, or malformed, is reset
    /// without calling it. The session's inbound streams are all taken as
    /// requests.
    pub async fn serve_requests<H, F>(&self, options: RequestOptions, handler: H) -> io::Result<()>
    where
        H: Fn(Bytes) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Bytes, ResetCode>> + Send + 'static,
    {
        let handler = std::sync::Arc::new(handler);
        let max_message = options.max_message;
        // A token per request in hand: sending waits once `concurrency` are out.
        let (in_hand, done) = async_std::channel::bounded::<()>(options.concurrency.max(1));
        loop {
            if in_hand.send(()).await.is_err() {
                return Ok(());
            }
            let Some(mut stream) = self.accept().await else {
                return Ok(());
            };
            let handler = handler.clone();
            let options = options.clone();
            let done = done.clone();
            async_std::task::spawn(async move {
                // Hands the token back however the task ends (a handler may panic).
                let _token = Token(done);
                let outcome = match within(options.read_timeout, read_message(&mut stream, max_message)).await {
                    Some(Ok(request)) => options.reply(handler(Bytes::from(request)).await),
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
