//! Request/response over a stream per exchange (PROTOCOL.md 8.1): the requester
//! writes one length-delimited message and finishes; the responder answers with
//! one and finishes. The framing is tokio-util's `LengthDelimitedCodec` with a
//! 4-byte big-endian length, the same bytes every hawser adapter writes.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hawser_core::ResetCode;
use hawser_driver::{MessageError, RequestOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

use crate::session::{Control, Session};
use crate::stream::Stream;

fn codec(max_message: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(hawser_driver::MESSAGE_PREFIX)
        .max_frame_length(max_message)
        .new_codec()
}

/// Reads the one message of `stream`, then its end.
async fn read_message(stream: &mut Stream, max_message: usize) -> Result<Bytes, MessageError> {
    let mut codec = codec(max_message);
    let mut buf = BytesMut::new();
    let message = loop {
        match codec.decode(&mut buf) {
            Ok(Some(message)) => break message.freeze(),
            Ok(None) => {}
            Err(err)
                if err
                    .get_ref()
                    .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>()) =>
            {
                return Err(MessageError::TooLarge)
            }
            Err(err) => return Err(MessageError::Io(err)),
        }
        if stream.read_buf(&mut buf).await.map_err(MessageError::Io)? == 0 {
            return Err(MessageError::Malformed);
        }
    };
    // One message per direction: the stream must end right after it.
    if !buf.is_empty() || stream.read_buf(&mut buf).await.map_err(MessageError::Io)? != 0 {
        return Err(MessageError::Malformed);
    }
    Ok(message)
}

/// Writes `message` as the stream's one message and finishes the stream.
async fn write_message(stream: &mut Stream, message: Bytes, max_message: usize) -> io::Result<()> {
    let mut framed = BytesMut::with_capacity(hawser_driver::MESSAGE_PREFIX + message.len());
    codec(max_message).encode(message, &mut framed)?;
    stream.write_all(&framed).await?;
    stream.shutdown().await
}

impl Control {
    /// Sends `message` on a new stream and returns the answer, waiting at most
    /// `timeout` in all (open, send, answer), with the default
    /// [`RequestOptions`]. A responder that failed shows as an error whose
    /// [`reset_code`](crate::reset_code) is the code it chose.
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
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no answer in time");
        let mut stream = tokio::time::timeout_at(deadline, self.open_stream())
            .await
            .map_err(|_| timed_out())??;
        let exchange = async {
            write_message(&mut stream, message, max_message)
                .await
                .map_err(MessageError::Io)?;
            read_message(&mut stream, max_message).await
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => {
                if let Some(code) = err.code() {
                    stream.reset(code);
                }
                Err(err.into_io(max_message))
            }
            Err(_) => {
                // Stopped waiting: the responder learns so at once.
                stream.reset(ResetCode::CANCEL);
                Err(timed_out())
            }
        }
    }
}

impl Session {
    /// Answers every request that arrives on this session with `handler`, at
    /// most `options.concurrency` at once, until the session stops taking
    /// streams (it closed or is going away). A handler that returns
    /// `Err(code)` resets that request's stream with `code`; a request longer
    /// than `options.max_message`, or malformed, is reset without calling it.
    /// The session's inbound streams are all taken as requests.
    pub async fn serve_requests<H, F>(&self, options: RequestOptions, handler: H) -> io::Result<()>
    where
        H: Fn(Bytes) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Bytes, ResetCode>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
        let max_message = options.max_message;
        loop {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| io::Error::other("the request semaphore closed"))?;
            let Some(mut stream) = self.accept().await else {
                return Ok(());
            };
            let handler = handler.clone();
            let options = options.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let outcome =
                    match tokio::time::timeout(options.read_timeout, read_message(&mut stream, max_message)).await {
                        Ok(Ok(request)) => options.reply(handler(request).await),
                        Ok(Err(err)) => Err(err.responder_reset(max_message).unwrap_or(ResetCode::CANCEL)),
                        Err(_) => Err(ResetCode::CANCEL),
                    };
                match outcome {
                    Ok(answer) => {
                        if let Err(err) = write_message(&mut stream, answer, max_message).await {
                            tracing::debug!(%err, "a request's answer could not be sent");
                        }
                    }
                    Err(code) => stream.reset(code),
                }
            });
        }
    }
}
