//! TLS 1.3 over the link: rustls makes the handshake, and this module seals
//! and opens the application-data records after it.
//!
//! Why not rustls's own record layer: through it, every received byte is
//! copied three times in user space (socket buffer, deframer, a new `Vec`
//! per record, the reader) and every record is a fresh allocation; a
//! forwarder spends most of its time moving bytes, so those copies were a
//! large share of what the tunnel cost per GiB. Here a reader whose buffer
//! has room for two whole records gets the records read into that buffer
//! and opened there, the plaintext never copied; a smaller buffer gets
//! plaintext copied once from up to 256 KiB of records read and opened in
//! the link's own. A write seals up to 512 KiB of records
//! into one buffer and hands it to the socket in one call.
//!
//! What is kept from TLS 1.3 (RFC 8446 §5): records of at most 2^14 bytes of
//! plaintext, the per-record nonce (the sequence number XORed into the
//! traffic IV), the record header as associated data, the inner content type
//! and its zero padding, `close_notify`. What is not done: key updates. A
//! link retires itself after [`RECORD_LIMIT`] records in either direction
//! (256 GiB of full records); the session then resumes over a new link with
//! fresh keys. Handshake messages after the
//! handshake are refused, except the session tickets an older server sends,
//! which are dropped (the tunnel never resumes TLS sessions).

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The record header: type, legacy version, length.
const HEADER: usize = 5;
/// The AEAD tag after each record's ciphertext.
const TAG: usize = 16;
/// Plaintext in one record, at most (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 1 << 14;
/// A record's length field, at most: plaintext, content type, padding, tag
/// (RFC 8446 §5.2).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// The smallest read buffer: one whole record of the largest size.
const MIN_READ: usize = HEADER + MAX_CIPHERTEXT;
/// The largest read buffer, which a link grows to while reads keep filling it.
const MAX_READ: usize = 256 * 1024 + MIN_READ;
/// Sealed bytes a writer holds before it makes its caller wait, as much as
/// the driver hands over in one batch. Against rustls's 64 KiB, 256 KiB took
/// 6–12% less CPU per GiB through the tunnel, and 512 KiB another 11–17%,
/// in fewer, larger sends to the socket. Bytes taken as written may wait
/// here or in the socket after the session's end; the tunnel waits for the
/// link's release (the peer has read everything) before the process exits.
const MAX_UNSENT: usize = 512 * 1024;
/// Records one link seals or opens before it retires (see the module docs):
/// 256 GiB of full records, inside the 2^24.5 that RFC 8446 §5.5 allows one
/// AES-GCM key.
pub const RECORD_LIMIT: u64 = 1 << 24;
#[cfg(not(test))]
fn record_limit() -> u64 {
    RECORD_LIMIT
}

/// The tests lower the limit on their own thread, to see links retire.
#[cfg(test)]
fn record_limit() -> u64 {
    tests::RECORD_LIMIT_HERE.with(|limit| limit.get())
}

/// A handshake message may be this large (rustls refuses larger ones).
const MAX_HANDSHAKE_BUFFER: usize = 128 * 1024;

const APPLICATION_DATA: u8 = 23;
const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
const NEW_SESSION_TICKET: u8 = 4;
const CLOSE_NOTIFY: u8 = 0;

/// Makes the TLS handshake as the client, then returns the link that
/// carries the session's bytes.
pub async fn connect<T: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    io: T,
) -> io::Result<TlsLink<T>> {
    let connection = UnbufferedClientConnection::new(config, name).map_err(tls_error)?;
    handshake(connection, io).await
}

/// Makes the TLS handshake as the server, then returns the link that
/// carries the session's bytes.
pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<rustls::ServerConfig>,
    io: T,
) -> io::Result<TlsLink<T>> {
    let connection = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    handshake(connection, io).await
}

/// A TLS error as the `io::Error` the link reports: `InvalidData`, with the
/// `rustls::Error` inside (callers look at it, see `link::is_not_tls`).
fn tls_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {what}"))
}

/// The client's and the server's unbuffered connections, which rustls gives
/// the same methods without a common trait.
trait Handshaking {
    type Data;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn extract(self) -> Result<ExtractedSecrets, rustls::Error>;
}

impl Handshaking for UnbufferedClientConnection {
    type Data = rustls::client::ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn extract(self) -> Result<ExtractedSecrets, rustls::Error> {
        self.dangerous_into_kernel_connection().map(|(secrets, _)| secrets)
    }
}

impl Handshaking for UnbufferedServerConnection {
    type Data = rustls::server::ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn extract(self) -> Result<ExtractedSecrets, rustls::Error> {
        self.dangerous_into_kernel_connection().map(|(secrets, _)| secrets)
    }
}

/// What the handshake loop does after one look at the connection.
enum Step {
    /// Look again.
    Again,
    /// Send what has been encoded.
    Transmit,
    /// Wait for the peer's next bytes.
    Read,
    /// The handshake is complete.
    Done,
}

async fn handshake<C: Handshaking, T: AsyncRead + AsyncWrite + Unpin>(
    mut connection: C,
    mut io: T,
) -> io::Result<TlsLink<T>> {
    let mut incoming = vec![0u8; MIN_READ];
    let mut filled = 0;
    let mut outgoing = Vec::new();
    // Application data that came with the handshake's last flight.
    let mut early = Vec::new();
    loop {
        let status = connection.process(&mut incoming[..filled]);
        let mut discard = status.discard;
        let step = match status.state {
            Ok(state) => take_step(state, &mut outgoing, &mut early, &mut discard),
            Err(err) => Err(tls_error(err)),
        };
        let step = match step {
            Ok(step) => step,
            Err(err) => {
                // rustls has queued an alert for the peer: tell it why, if
                // the link lets us.
                let status = connection.process(&mut incoming[..filled]);
                if let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state {
                    let mut alert = vec![0u8; 64];
                    if let Ok(n) = encode.encode(&mut alert) {
                        let _ = io.write_all(&alert[..n]).await;
                    }
                }
                return Err(err);
            }
        };
        incoming.copy_within(discard..filled, 0);
        filled -= discard;
        match step {
            Step::Again => {}
            Step::Transmit => {
                io.write_all(&outgoing).await?;
                outgoing.clear();
            }
            Step::Read => {
                if filled == incoming.len() {
                    if incoming.len() >= MAX_HANDSHAKE_BUFFER {
                        return Err(invalid("a handshake message too large"));
                    }
                    incoming.resize(incoming.len() * 2, 0);
                }
                let n = io.read(&mut incoming[filled..]).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    ));
                }
                filled += n;
            }
            Step::Done => break,
        }
    }
    if !outgoing.is_empty() {
        io.write_all(&outgoing).await?;
    }
    let secrets = connection.extract().map_err(tls_error)?;
    incoming.truncate(filled);
    TlsLink::new(io, secrets, incoming, early)
}

/// One look at the handshake: encodes what rustls has to send, keeps
/// application data that arrived, and says what to do next.
fn take_step<Data>(
    state: ConnectionState<'_, '_, Data>,
    outgoing: &mut Vec<u8>,
    early: &mut Vec<u8>,
    discard: &mut usize,
) -> io::Result<Step> {
    Ok(match state {
        ConnectionState::EncodeTlsData(mut encode) => {
            let start = outgoing.len();
            let mut room = 4096;
            loop {
                outgoing.resize(start + room, 0);
                match encode.encode(&mut outgoing[start..]) {
                    Ok(n) => {
                        outgoing.truncate(start + n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(need)) => room = need.required_size,
                    Err(err) => {
                        outgoing.truncate(start);
                        return Err(io::Error::other(format!("TLS: {err}")));
                    }
                }
            }
            Step::Again
        }
        ConnectionState::TransmitTlsData(transmit) => {
            // Done before the bytes are out, but the loop sends them before
            // it asks rustls anything again, which is what rustls requires.
            transmit.done();
            Step::Transmit
        }
        ConnectionState::BlockedHandshake => Step::Read,
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let record = record.map_err(tls_error)?;
                *discard += record.discard;
                early.extend_from_slice(record.payload);
            }
            Step::Again
        }
        ConnectionState::WriteTraffic(_) => Step::Done,
        ConnectionState::PeerClosed | ConnectionState::Closed => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed TLS during the handshake",
            ))
        }
        _ => return Err(invalid("an unexpected state in the handshake")),
    })
}

/// What one opened record held.
enum Content {
    /// This many bytes of application data.
    Data(usize),
    /// The peer's `close_notify`: what came before it is all.
    CloseNotify,
    /// Something to drop (session tickets from an older server).
    Nothing,
}

/// Opens the record at `bytes[from..]`, if all of it is there, moving its
/// content to `bytes[to..]` (`to` at most `from + HEADER`; `from + HEADER`
/// opens it where it lies). Returns the record's length with its header, and
/// what it held; `None` while the record is incomplete.
fn open_record(
    opener: &mut Direction,
    bytes: &mut [u8],
    from: usize,
    to: usize,
) -> io::Result<Option<(usize, Content)>> {
    let available = &bytes[from..];
    if available.len() < HEADER {
        return Ok(None);
    }
    let header: [u8; HEADER] = available[..HEADER]
        .try_into()
        .expect("five bytes were checked to be there");
    let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[..3] != [APPLICATION_DATA, 3, 3] {
        return Err(invalid("a record that is not TLS 1.3 application data"));
    }
    if !(TAG + 1..=MAX_CIPHERTEXT).contains(&length) {
        return Err(invalid("a record of an impossible length"));
    }
    if available.len() < HEADER + length {
        return Ok(None);
    }
    let nonce = opener.next_nonce()?;
    // The ciphertext sits `shift` bytes past where its plaintext goes; ring
    // opens it and moves it there in one pass.
    let shift = from + HEADER - to;
    let opened = opener
        .key
        .open_within(
            nonce,
            Aad::from(header),
            &mut bytes[to..from + HEADER + length],
            shift..,
        )
        .map_err(|_| invalid("a record that does not decrypt (corrupted, or not from the peer)"))?;
    // The content type is the last byte that is not padding.
    let Some(type_at) = opened.iter().rposition(|&byte| byte != 0) else {
        return Err(invalid("a record without a content type"));
    };
    if type_at > MAX_PLAINTEXT {
        return Err(invalid("a record with too much plaintext"));
    }
    let content = match opened[type_at] {
        APPLICATION_DATA => Content::Data(type_at),
        ALERT => match opened[..type_at] {
            [_, CLOSE_NOTIFY] => Content::CloseNotify,
            [_, description] => return Err(invalid(&format!("the peer sent alert {description}"))),
            _ => return Err(invalid("a malformed alert")),
        },
        HANDSHAKE if only_session_tickets(&opened[..type_at]) => Content::Nothing,
        HANDSHAKE => return Err(invalid("a handshake message after the handshake")),
        _ => return Err(invalid("a record of an unknown content type")),
    };
    Ok(Some((HEADER + length, content)))
}

/// One direction's key and sequence number.
struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    sequence: u64,
}

impl Direction {
    fn new((sequence, secrets): (u64, ConnectionTrafficSecrets)) -> io::Result<Direction> {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
            _ => return Err(invalid("a cipher suite this link cannot carry")),
        };
        let key = UnboundKey::new(algorithm, key.as_ref()).map_err(|_| invalid("a key of the wrong length"))?;
        let iv: [u8; NONCE_LEN] = iv
            .as_ref()
            .try_into()
            .map_err(|_| invalid("an IV of the wrong length"))?;
        Ok(Direction {
            key: LessSafeKey::new(key),
            iv,
            sequence,
        })
    }

    /// The next record's nonce (RFC 8446 §5.3); refuses once the link has
    /// used [`RECORD_LIMIT`] records this way.
    fn next_nonce(&mut self) -> io::Result<Nonce> {
        if self.sequence >= record_limit() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the link has used its TLS keys for as many records as it may; a new link takes over",
            ));
        }
        let mut nonce = self.iv;
        for (byte, sequence_byte) in nonce[NONCE_LEN - 8..].iter_mut().zip(self.sequence.to_be_bytes()) {
            *byte ^= sequence_byte;
        }
        self.sequence += 1;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// A byte link over TLS 1.3 after the handshake (see the module docs).
pub struct TlsLink<T> {
    io: T,
    opener: Direction,
    sealer: Direction,
    /// Received bytes: opened plaintext at `plaintext`, then records not yet
    /// opened from `unopened` to `filled`.
    incoming: Vec<u8>,
    plaintext: Range<usize>,
    unopened: usize,
    filled: usize,
    /// Plaintext that arrived during the handshake, read before the rest.
    early: Vec<u8>,
    /// The peer sent `close_notify`: what came before it is all.
    peer_closed: bool,
    /// Sealed records; `outgoing[sent..]` is not yet written.
    outgoing: Vec<u8>,
    sent: usize,
    close_queued: bool,
}

impl<T> TlsLink<T> {
    fn new(io: T, secrets: ExtractedSecrets, mut incoming: Vec<u8>, early: Vec<u8>) -> io::Result<TlsLink<T>> {
        let filled = incoming.len();
        incoming.resize(filled.max(MIN_READ), 0);
        Ok(TlsLink {
            io,
            opener: Direction::new(secrets.rx)?,
            sealer: Direction::new(secrets.tx)?,
            incoming,
            plaintext: 0..0,
            unopened: 0,
            filled,
            early,
            peer_closed: false,
            outgoing: Vec::new(),
            sent: 0,
            close_queued: false,
        })
    }

    /// Opens the next whole record in the buffer, if there is one. Returns
    /// whether one was opened (it may have held no plaintext).
    fn open_next(&mut self) -> io::Result<bool> {
        let from = self.unopened;
        let bytes = &mut self.incoming[..self.filled];
        let Some((length, content)) = open_record(&mut self.opener, bytes, from, from + HEADER)? else {
            return Ok(false);
        };
        self.unopened = from + length;
        match content {
            Content::Data(len) => self.plaintext = from + HEADER..from + HEADER + len,
            Content::CloseNotify => self.peer_closed = true,
            Content::Nothing => {}
        }
        Ok(true)
    }

    /// Makes room for the next read: moves an incomplete record to the front
    /// and, when the last read filled the whole buffer (the link is busy),
    /// doubles the buffer, up to [`MAX_READ`]. It never shrinks: a link that
    /// shrank after a lull would fault in and zero its buffer again at the
    /// next burst, and that cost more than the memory it saved.
    fn make_room(&mut self) {
        let leftover = self.filled - self.unopened;
        let grow = self.filled == self.incoming.len() && self.incoming.len() < MAX_READ;
        self.incoming.copy_within(self.unopened..self.filled, 0);
        self.unopened = 0;
        self.filled = leftover;
        self.plaintext = 0..0;
        if grow {
            self.incoming.resize((self.incoming.len() * 2).min(MAX_READ), 0);
        }
    }

    /// Seals up to `limit` bytes of `bufs` into records appended to
    /// `outgoing`, copying each byte once; small slices (frame headers beside
    /// their payloads) share records. Returns how many bytes it took.
    fn seal_from(&mut self, bufs: &[io::IoSlice<'_>], limit: usize) -> io::Result<usize> {
        let mut taken = 0;
        // Where the content of the record being filled starts in `outgoing`.
        let mut open: Option<usize> = None;
        for buf in bufs {
            let mut slice = &buf[..buf.len().min(limit - taken)];
            taken += slice.len();
            while !slice.is_empty() {
                let start = match open {
                    Some(start) => start,
                    None => self.begin_record(),
                };
                let n = (MAX_PLAINTEXT - (self.outgoing.len() - start)).min(slice.len());
                self.outgoing.extend_from_slice(&slice[..n]);
                slice = &slice[n..];
                if self.outgoing.len() - start == MAX_PLAINTEXT {
                    self.end_record(start, APPLICATION_DATA)?;
                    open = None;
                } else {
                    open = Some(start);
                }
            }
            if taken == limit {
                break;
            }
        }
        if let Some(start) = open {
            self.end_record(start, APPLICATION_DATA)?;
        }
        Ok(taken)
    }

    /// Leaves room for a record header; returns where the content starts.
    fn begin_record(&mut self) -> usize {
        self.outgoing.extend_from_slice(&[0; HEADER]);
        self.outgoing.len()
    }

    /// Seals the record whose content is `outgoing[start..]`, in place.
    fn end_record(&mut self, start: usize, content_type: u8) -> io::Result<()> {
        let nonce = match self.sealer.next_nonce() {
            Ok(nonce) => nonce,
            Err(err) => {
                // The plaintext must never reach the socket unsealed.
                self.outgoing.truncate(start - HEADER);
                return Err(err);
            }
        };
        self.outgoing.push(content_type);
        let length = self.outgoing.len() - start + TAG;
        // At most MAX_PLAINTEXT + 1 + TAG: fits the 16-bit length field.
        let header = [APPLICATION_DATA, 3, 3, (length >> 8) as u8, length as u8];
        self.outgoing[start - HEADER..start].copy_from_slice(&header);
        let sealed = self
            .sealer
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut self.outgoing[start..]);
        let Ok(tag) = sealed else {
            self.outgoing.truncate(start - HEADER);
            return Err(io::Error::other("TLS: sealing a record failed"));
        };
        self.outgoing.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// Whether a post-handshake message is session tickets and nothing else:
/// what a server that still sends them says after the handshake.
fn only_session_tickets(mut messages: &[u8]) -> bool {
    if messages.is_empty() {
        return false;
    }
    while !messages.is_empty() {
        if messages.len() < 4 || messages[0] != NEW_SESSION_TICKET {
            return false;
        }
        let length = usize::from(messages[1]) << 16 | usize::from(messages[2]) << 8 | usize::from(messages[3]);
        match messages.get(4 + length..) {
            Some(rest) => messages = rest,
            None => return false,
        }
    }
    true
}

impl<T: AsyncWrite + Unpin> TlsLink<T> {
    /// Writes sealed bytes until all are out (Ready) or the socket is full
    /// (Pending).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> TlsLink<T> {
    /// Reads from the socket straight into `buf` (after the incomplete record
    /// waiting in `incoming`, if any) and opens the whole records there, each
    /// one's content moved up against the last one's: the plaintext is never
    /// copied. What is left of an incomplete record goes back to `incoming`.
    /// `buf` must have room for a whole record and more.
    #[allow(unsafe_code)]
    fn read_direct(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // SAFETY: the unfilled part of `buf` may be uninitialised; it is only
        // handed to `ReadBuf::uninit`, and nothing written through that
        // de-initialises a byte.
        let room = unsafe { buf.unfilled_mut() };
        let mut read = ReadBuf::uninit(room);
        read.put_slice(&self.incoming[self.unopened..self.filled]);
        let waiting = read.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let total = read.filled().len();
        if total == waiting {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the link ended without TLS close_notify",
            )));
        }
        let bytes = read.filled_mut();
        let (mut from, mut to) = (0, 0);
        while !self.peer_closed {
            let Some((length, content)) = open_record(&mut self.opener, bytes, from, to)? else {
                break;
            };
            from += length;
            match content {
                Content::Data(len) => to += len,
                Content::CloseNotify => self.peer_closed = true,
                Content::Nothing => {}
            }
        }
        // Shorter than a whole record, so it fits (`incoming` holds one).
        let rest = if self.peer_closed { &[][..] } else { &bytes[from..] };
        self.incoming[..rest.len()].copy_from_slice(rest);
        self.unopened = 0;
        self.filled = rest.len();
        self.plaintext = 0..0;
        // SAFETY: `read`, over the same memory, filled its first `total` bytes.
        unsafe { buf.assume_init(total) };
        buf.advance(to);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TlsLink<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.drain(..n);
            return Poll::Ready(Ok(()));
        }
        // Hands over as many opened records as fit, and reads from the
        // socket only when there is nothing to give.
        let before = buf.filled().len();
        loop {
            if !this.plaintext.is_empty() {
                let n = this.plaintext.len().min(buf.remaining());
                buf.put_slice(&this.incoming[this.plaintext.start..this.plaintext.start + n]);
                this.plaintext.start += n;
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if this.open_next()? {
                continue;
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() >= 2 * MIN_READ {
                // Nothing opened is left: the next records are read and
                // opened in the reader's own buffer, a copy less.
                ready!(this.read_direct(cx, buf))?;
                if buf.filled().len() > before || this.peer_closed {
                    return Poll::Ready(Ok(()));
                }
                // Only part of a record came: it waits in `incoming`.
                continue;
            }
            this.make_room();
            let mut read = ReadBuf::new(&mut this.incoming[this.filled..]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the link ended without TLS close_notify",
                )));
            }
            this.filled += n;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TlsLink<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Poll::Ready(result) = this.poll_send(cx) {
            result?;
        }
        let unsent = this.outgoing.len() - this.sent;
        if unsent >= MAX_UNSENT {
            // `poll_send` was Pending: the socket wakes this task.
            return Poll::Pending;
        }
        // What the socket took goes from the front, so that the buffer
        // stays within MAX_UNSENT and a record or two.
        this.outgoing.drain(..this.sent);
        this.sent = 0;
        let room = MAX_UNSENT - unsent;
        let taken = this.seal_from(bufs, room)?;
        if taken == 0 {
            return Poll::Ready(Ok(0));
        }
        // Start the bytes on their way; what the socket does not take now
        // goes with the next write or flush.
        if let Poll::Ready(Err(err)) = this.poll_send(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.close_queued {
            this.close_queued = true;
            // A warning-level close_notify alert.
            let start = this.begin_record();
            this.outgoing.extend_from_slice(&[1, CLOSE_NOTIFY]);
            this.end_record(start, ALERT)?;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{self, Trust};
    use hawser_conformance::interop::link::Pattern;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::DuplexStream;

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let (cert, key, fingerprint) = tls::self_signed(vec!["hawser".into()]).expect("rcgen makes a certificate");
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("rcgen's PEM parses")];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("rcgen's PEM parses");
        let server = tls::server_config(chain, key).expect("a fresh key fits its certificate");
        let client = tls::client_config(&Trust::Fingerprint(fingerprint)).expect("a fingerprint is trust enough");
        (server, client)
    }

    thread_local! {
        pub(super) static RECORD_LIMIT_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(RECORD_LIMIT) };
    }

    fn name() -> ServerName<'static> {
        ServerName::try_from("hawser").expect("a valid DNS name")
    }

    async fn pair() -> (TlsLink<DuplexStream>, TlsLink<DuplexStream>) {
        let (server_config, client_config) = configs();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (client, server) = tokio::join!(
            connect(client_config, name(), client_io),
            accept(server_config, server_io)
        );
        (
            client.expect("the client's handshake"),
            server.expect("the server's handshake"),
        )
    }

    /// The conformance suite's byte pattern, so a misplaced record shows.
    fn pattern(len: usize) -> Vec<u8> {
        Pattern::new(len as u64).take(len)
    }

    /// Writes `data` in slices of the sizes in `cuts`, in turn, several per
    /// vectored write; then shuts down.
    async fn write_cut(link: &mut (impl AsyncWrite + Unpin), data: &[u8], cuts: &[usize]) {
        let mut at = 0;
        let mut turn = 0;
        while at < data.len() {
            let mut slices = Vec::new();
            let mut end = at;
            for _ in 0..3 {
                let cut = cuts[turn % cuts.len()];
                turn += 1;
                let next = (end + cut).min(data.len());
                slices.push(io::IoSlice::new(&data[end..next]));
                end = next;
            }
            let n = link.write_vectored(&slices).await.expect("the link takes bytes");
            at += n;
        }
        link.shutdown().await.expect("close_notify goes out");
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_whole_and_in_order_then_end_cleanly() {
        let (mut client, mut server) = pair().await;
        let up = pattern(3 << 20);
        let down = pattern(1 << 20);
        let (mut client_in, mut client_out) = tokio::io::split(&mut client);
        let (mut server_in, mut server_out) = tokio::io::split(&mut server);
        let (_, _, got_up, got_down) = tokio::join!(
            write_cut(&mut client_out, &up, &[1, 5, 16 * 1024 + 3, 70_000, 300 * 1024]),
            write_cut(&mut server_out, &down, &[100 * 1024, 7]),
            read_all(&mut server_in),
            read_all(&mut client_in),
        );
        assert!(got_up == up, "the server read other bytes than the client wrote");
        assert!(got_down == down, "the client read other bytes than the server wrote");
    }

    /// Reads to close_notify into buffers of changing sizes: the small ones
    /// take plaintext the link opened in its own buffer, the large ones
    /// (room for two whole records) have records opened in them.
    async fn read_all(reader: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0; 200_000];
        for size in [1, 70_000, 1000, 200_000, 33_000, 7, 40_000].into_iter().cycle() {
            let n = reader.read(&mut buf[..size]).await.expect("reads to close_notify");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
        }
        unreachable!("the sizes cycle for ever")
    }

    #[tokio::test]
    async fn speaks_tls_as_rustls_does_both_as_client_and_as_server() {
        let (server_config, client_config) = configs();
        // A server that still sends session tickets after the handshake.
        let mut ticketing = (*server_config).clone();
        ticketing.send_tls13_tickets = 2;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ticketing));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let data = pattern(200 * 1024);
        let (ours, theirs) = tokio::join!(connect(client_config.clone(), name(), client_io), async {
            acceptor.accept(server_io).await
        });
        let (mut ours, mut theirs) = (
            ours.expect("our client's handshake"),
            theirs.expect("rustls's handshake"),
        );
        let reply = async {
            let mut got = vec![0; data.len()];
            theirs.read_exact(&mut got).await.expect("rustls reads our records");
            theirs.write_all(&got).await.expect("rustls writes back");
            theirs.shutdown().await.expect("rustls sends close_notify");
        };
        let ask = async {
            ours.write_all(&data).await.expect("we write");
            ours.flush().await.expect("we flush");
            let mut got = Vec::new();
            ours.read_to_end(&mut got)
                .await
                .expect("we read rustls's records and its tickets");
            got
        };
        let (_, echoed) = tokio::join!(reply, ask);
        assert!(echoed == data, "the echo through rustls differs");

        let connector = tokio_rustls::TlsConnector::from(client_config);
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (theirs, ours) = tokio::join!(connector.connect(name(), client_io), accept(server_config, server_io));
        let (mut theirs, mut ours) = (
            theirs.expect("rustls's handshake"),
            ours.expect("our server's handshake"),
        );
        let send = async {
            theirs.write_all(&data).await.expect("rustls writes");
            theirs.shutdown().await.expect("rustls sends close_notify");
        };
        let (_, got) = tokio::join!(send, read_all(&mut ours));
        assert!(got == data, "what rustls sent differs from what we read");
    }

    #[tokio::test]
    async fn a_changed_byte_is_refused_and_never_read() {
        let (mut client, mut server) = pair().await;
        client
            .seal_from(&[io::IoSlice::new(b"pay the bearer")], usize::MAX)
            .expect("sealing");
        let mut record = std::mem::take(&mut client.outgoing);
        record[HEADER + 3] ^= 1;
        client.io.write_all(&record).await.expect("raw bytes go out");
        let mut got = [0u8; 64];
        let err = server.read(&mut got).await.expect_err("a forged record");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_link_cut_without_close_notify_is_an_error_not_an_end() {
        let (client, mut server) = pair().await;
        drop(client);
        let mut got = Vec::new();
        let err = server.read_to_end(&mut got).await.expect_err("no close_notify came");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_link_retires_at_its_record_limit() {
        let (mut client, _server) = pair().await;
        client.sealer.sequence = RECORD_LIMIT - 1;
        client.write_all(b"last").await.expect("the last record allowed");
        let err = client.write_all(b"one more").await.expect_err("past the limit");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        let unsent = &client.outgoing[client.sent..];
        assert!(
            !unsent.windows(8).any(|bytes| bytes == b"one more"),
            "plaintext left to be sent unsealed"
        );
    }

    #[tokio::test]
    async fn a_server_without_tls_is_reported_as_no_tls() {
        let (_, client_config) = configs();
        let (client_io, mut server_io) = tokio::io::duplex(1024);
        let (result, _) = tokio::join!(connect(client_config, name(), client_io), async {
            let mut hello = [0u8; 5];
            server_io.read_exact(&mut hello).await.expect("the client hello");
            server_io
                .write_all(b"no TLS here, just bytes")
                .await
                .expect("plaintext back");
        });
        let err = result.err().expect("no TLS from the server");
        let tls = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
        assert!(matches!(tls, Some(rustls::Error::InvalidMessage(_))), "{err}");
    }

    #[test]
    fn session_tickets_are_told_from_other_handshake_messages() {
        assert!(only_session_tickets(&[4, 0, 0, 2, 9, 9]));
        assert!(only_session_tickets(&[4, 0, 0, 1, 9, 4, 0, 0, 0]));
        // A key update, a ticket cut short, nothing at all.
        assert!(!only_session_tickets(&[24, 0, 0, 1, 0]));
        assert!(!only_session_tickets(&[4, 0, 0, 9, 1]));
        assert!(!only_session_tickets(&[]));
    }

    /// Links that reach their record limit give way to new ones under a
    /// forwarded connection, and every byte still arrives once, in order.
    /// (On this test's one thread, links retire after 64 records.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_forwarded_connection_outlives_links_that_retire() {
        use crate::auth::Token;
        use crate::client::{Client, ClientOptions, Forward};
        use tokio::net::{TcpListener, TcpStream};

        RECORD_LIMIT_HERE.with(|limit| limit.set(64));
        let (server_tls, client_tls) = configs();
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let target = echo.local_addr().expect("bound");
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut from, mut to) = tcp.split();
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                    let _ = to.shutdown().await;
                });
            }
        });
        let token = Token::parse(&Token::generate().expect("randomness")).expect("a fresh token parses");
        let server = crate::server::Server::new(crate::server::ServerOptions {
            clients: crate::rights::Clients::single(
                token.clone(),
                crate::allow::Rules::parse(&[target.to_string()]).expect("an address is a rule"),
                Vec::new(),
            ),
            tls: Some(server_tls),
            config: crate::session_config(),
        })
        .expect("a server");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let server_addr = listener.local_addr().expect("bound");
        tokio::spawn(server.serve(listener));
        let client = Client::start(ClientOptions {
            dialer: crate::link::Dialer {
                server: server_addr.to_string(),
                tls: Some((client_tls, name())),
                token,
                proxy: None,
                websocket: None,
            },
            forwards: vec![Forward {
                bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                target: target.to_string(),
            }],
            reverses: Vec::new(),
            socks: Vec::new(),
            socks_credentials: None,
            config: crate::session_config(),
            retry: crate::retry_policy(),
        })
        .await
        .expect("the client starts");
        let local = client.local_addrs[0];

        // 4 MiB each way: 256 full records, four links' worth at least.
        let data = pattern(4 << 20);
        let tcp = TcpStream::connect(local).await.expect("the forward listens");
        let (mut from, mut to) = tcp.into_split();
        let send = async {
            to.write_all(&data).await.expect("the forward takes the bytes");
            to.shutdown().await.expect("half-close");
        };
        let (_, echoed) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            tokio::join!(send, read_all(&mut from))
        })
        .await
        .expect("the transfer finishes");
        assert_eq!(echoed.len(), data.len());
        assert!(
            echoed == data,
            "bytes were lost, repeated or reordered across the links"
        );
        RECORD_LIMIT_HERE.with(|limit| limit.set(RECORD_LIMIT));
    }
}
