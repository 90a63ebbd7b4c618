//! What a stream says before it carries a forwarded connection: one request,
//! and (for requests that the server may refuse) one answer. Everything after
//! is the connection's bytes.
//!
//! ```text
//! request: kind (1) | length (2, big-endian) | text (length bytes, UTF-8)
//!   1 connect   text = "HOST:PORT"   (client to server, for -L)
//!   2 listen    text = "BIND:PORT"   (client to server, for -R; the stream stays
//!                                     open for as long as the listener should)
//!   3 reverse   text = "BIND:PORT"   (server to client: a connection to that
//!                                     reverse listener)
//! answer:  status (1) | code (4) | length (2) | message (length bytes, UTF-8)
//!   status 0: ok (code 0, no message); 1: refused with that reset code and why,
//!   and the server then finishes the stream
//! ```

use std::io;

use hawser_core::ResetCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest request text or answer message.
pub const MAX_TEXT: usize = 1024;

/// Reset codes the tunnel uses on its streams.
pub mod codes {
    use hawser_core::ResetCode;

    /// The server's allow list does not have the target (or reverse port).
    pub const NOT_ALLOWED: ResetCode = ResetCode(0x100);
    /// The target refused the connection or could not be reached.
    pub const TARGET_UNREACHABLE: ResetCode = ResetCode(0x101);
    /// The target did not answer in time.
    pub const TARGET_TIMEOUT: ResetCode = ResetCode(0x102);
    /// The local connection failed (it was reset, or an I/O error).
    pub const CONNECTION_FAILED: ResetCode = ResetCode(0x103);
    /// The stream's request was malformed.
    pub const BAD_REQUEST: ResetCode = ResetCode(0x104);

    /// What a code means, for a log line.
    pub fn describe(code: ResetCode) -> &'static str {
        match code {
            NOT_ALLOWED => "not allowed by the server",
            TARGET_UNREACHABLE => "the target is unreachable",
            TARGET_TIMEOUT => "the target did not answer in time",
            CONNECTION_FAILED => "the connection at the other end failed",
            BAD_REQUEST => "malformed request",
            ResetCode::CANCEL => "cancelled",
            ResetCode::REFUSED => "refused (too many streams, or the session is going away)",
            _ => "reset",
        }
    }
}

/// What a stream is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Client to server: dial this target.
    Connect(String),
    /// Client to server: listen here and send me the connections.
    Listen(String),
    /// Server to client: a connection to the reverse listener at this address.
    Reverse(String),
}

impl Request {
    fn kind(&self) -> u8 {
        match self {
            Request::Connect(_) => 1,
            Request::Listen(_) => 2,
            Request::Reverse(_) => 3,
        }
    }

    fn text(&self) -> &str {
        match self {
            Request::Connect(text) | Request::Listen(text) | Request::Reverse(text) => text,
        }
    }

    /// Writes the request.
    pub async fn write<W: AsyncWrite + Unpin>(&self, out: &mut W) -> io::Result<()> {
        write_text(out, self.kind(), self.text()).await
    }

    /// Reads a request; `InvalidData` if it is malformed.
    pub async fn read<R: AsyncRead + Unpin>(input: &mut R) -> io::Result<Request> {
        let (kind, text) = read_text(input).await?;
        match kind {
            1 => Ok(Request::Connect(text)),
            2 => Ok(Request::Listen(text)),
            3 => Ok(Request::Reverse(text)),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown request kind {other}"),
            )),
        }
    }
}

/// Why the server refused a request: a reset code and a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal (one of [`codes`]).
    pub code: ResetCode,
    /// Why, in words.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (code {:#x}: {})",
            self.message,
            self.code.0,
            codes::describe(self.code)
        )
    }
}

/// The server's answer to a connect or listen request.
pub async fn write_answer<W: AsyncWrite + Unpin>(out: &mut W, answer: &Result<(), Refusal>) -> io::Result<()> {
    let (status, code, message) = match answer {
        Ok(()) => (0u8, 0u32, ""),
        Err(refusal) => (1, refusal.code.0, refusal.message.as_str()),
    };
    let message = bounded(message);
    let mut frame = Vec::with_capacity(7 + message.len());
    frame.push(status);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(&(message.len() as u16).to_be_bytes());
    frame.extend_from_slice(message);
    out.write_all(&frame).await
}

/// Reads the server's answer.
pub async fn read_answer<R: AsyncRead + Unpin>(input: &mut R) -> io::Result<Result<(), Refusal>> {
    let mut head = [0u8; 5];
    input.read_exact(&mut head).await?;
    let (_, text) = read_text_after(input, head[0]).await?;
    if head[0] == 0 {
        return Ok(Ok(()));
    }
    let code = ResetCode(u32::from_be_bytes([head[1], head[2], head[3], head[4]]));
    Ok(Err(Refusal { code, message: text }))
}

/// `text` cut to at most [`MAX_TEXT`] bytes, at a character boundary, so that
/// what is sent is still UTF-8.
fn bounded(text: &str) -> &[u8] {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.as_bytes().get(..end).unwrap_or_default()
}

async fn write_text<W: AsyncWrite + Unpin>(out: &mut W, kind: u8, text: &str) -> io::Result<()> {
    let text = bounded(text);
    let mut frame = Vec::with_capacity(3 + text.len());
    frame.push(kind);
    frame.extend_from_slice(&(text.len() as u16).to_be_bytes());
    frame.extend_from_slice(text);
    out.write_all(&frame).await
}

async fn read_text<R: AsyncRead + Unpin>(input: &mut R) -> io::Result<(u8, String)> {
    let mut kind = [0u8; 1];
    input.read_exact(&mut kind).await?;
    read_text_after(input, kind[0]).await
}

/// Reads a length and that much UTF-8 text.
async fn read_text_after<R: AsyncRead + Unpin>(input: &mut R, kind: u8) -> io::Result<(u8, String)> {
    let mut head = [0u8; 2];
    input.read_exact(&mut head).await?;
    let len = usize::from(u16::from_be_bytes(head));
    if len > MAX_TEXT {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request text too long"));
    }
    let mut text = vec![0u8; len];
    input.read_exact(&mut text).await?;
    let text =
        String::from_utf8(text).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request text is not UTF-8"))?;
    Ok((kind, text))
}

/// A reset stream's code, if `err` is a reset.
pub fn reset_of(err: &io::Error) -> Option<ResetCode> {
    hawser_tokio::reset_code(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_and_answers_round_trip_and_bad_ones_are_refused() {
        let mut buf = Vec::new();
        Request::Connect("db.internal:5432".into())
            .write(&mut buf)
            .await
            .expect("write");
        let refusal = Refusal {
            code: codes::NOT_ALLOWED,
            message: "no".into(),
        };
        write_answer(&mut buf, &Err(refusal.clone())).await.expect("write");
        write_answer(&mut buf, &Ok(())).await.expect("write");
        let mut input = &buf[..];
        assert_eq!(
            Request::read(&mut input).await.expect("read"),
            Request::Connect("db.internal:5432".into())
        );
        assert_eq!(read_answer(&mut input).await.expect("read"), Err(refusal));
        assert_eq!(read_answer(&mut input).await.expect("read"), Ok(()));
        let mut long = vec![1u8];
        long.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            Request::read(&mut &long[..]).await.map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidData)
        );
        // A long message is cut at a character boundary, and still reads.
        let mut buf = Vec::new();
        let long = Refusal {
            code: codes::NOT_ALLOWED,
            // Two-byte characters after one byte: byte MAX_TEXT falls inside one.
            message: format!("a{}", "é".repeat(MAX_TEXT)),
        };
        write_answer(&mut buf, &Err(long)).await.expect("write");
        let read = read_answer(&mut &buf[..]).await.expect("still UTF-8");
        assert_eq!(read.map_err(|r| r.message.len()), Err(MAX_TEXT - 1));
        let bad_utf8 = [1u8, 0, 1, 0xff];
        assert!(Request::read(&mut &bad_utf8[..]).await.is_err());
        assert!(Request::read(&mut &[9u8, 0, 0][..]).await.is_err());
    }
}
