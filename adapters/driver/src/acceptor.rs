//! The server side of resumable sessions, written once over a [`Runtime`]: read
//! each new link's opening frame, then start a session, resume the detached
//! session it names, or refuse it.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::Bytes;
use hawser_core::frame::HEADER_LEN;
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal};
use hawser_core::Config;

use crate::link::Link;
use crate::link_driver::LinkDriver;
use crate::registry::{AcceptorStats, Registry, SourceAddr};
use crate::runtime::{timeout, LinkOf};
use crate::session::{spawn_driver, Session};

/// What [`Acceptor::accept`] did with a link.
pub enum Accepted<R> {
    /// It started a new session (its driver already runs on the runtime).
    New(Session<R>),
    /// It resumed a detached session, which carries on over this link.
    Resumed,
    /// It refused a resume request; the link was answered and closed.
    Refused(ResumeRefusal),
}

impl<R> std::fmt::Debug for Accepted<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accepted::New(_) => f.write_str("New(..)"),
            Accepted::Resumed => f.write_str("Resumed"),
            Accepted::Refused(refusal) => f.debug_tuple("Refused").field(refusal).finish(),
        }
    }
}

/// The server side of resumable sessions: it reads each new link's first
/// frame and starts a new session, resumes the detached session the link
/// names, or refuses it. `T` is the link type (a TCP or TLS stream of the
/// runtime's ecosystem).
///
/// Call [`accept`](Acceptor::accept) on a task of its own for every link
/// (never inline in an accept loop: one silent client would hold up every
/// accept, resumes included, for the handshake timeout), or let the adapter's
/// `serve` run the loop for a TCP listener.
pub struct Acceptor<R: LinkOf<T>, T> {
    config: Config,
    registry: Arc<Registry<R::Link>>,
}

impl<R: LinkOf<T>, T> Clone for Acceptor<R, T> {
    fn clone(&self) -> Self {
        Acceptor {
            config: self.config.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<R: LinkOf<T>, T> std::fmt::Debug for Acceptor<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").field("stats", &self.stats()).finish()
    }
}

impl<R: LinkOf<T>, T> Acceptor<R, T> {
    /// An acceptor whose new sessions use `config` (which must enable resumption).
    pub fn new(config: Config) -> io::Result<Self> {
        Ok(Acceptor {
            registry: Arc::new(Registry::for_config(&config)?),
            config,
        })
    }

    /// What the acceptor holds now (sessions, detached ones and the bytes they
    /// hold) and what its budgets have done (sessions ended, attempts refused).
    pub fn stats(&self) -> AcceptorStats {
        self.registry.stats()
    }

    /// Reads the link's first frame (waiting at most the handshake timeout) and
    /// starts a new session, resumes the detached one it names, or refuses it
    /// (answering and closing the link). Without the peer's address, only the
    /// global budgets apply; prefer [`accept_from`](Acceptor::accept_from).
    pub fn accept(&self, link: T) -> impl Future<Output = io::Result<Accepted<R>>> + Send + '_ {
        let link = R::link(link);
        async move { self.accept_link(link, None).await }
    }

    /// [`accept`](Acceptor::accept) for a link from `peer`, whose address the
    /// per-source budgets of `Resumption` (detached sessions, failed resumes)
    /// count against.
    pub fn accept_from(
        &self,
        link: T,
        peer: std::net::IpAddr,
    ) -> impl Future<Output = io::Result<Accepted<R>>> + Send + '_ {
        let link = R::link(link);
        async move { self.accept_link(link, Some(SourceAddr::of(peer))).await }
    }

    async fn accept_link(&self, mut link: R::Link, source: Option<SourceAddr>) -> io::Result<Accepted<R>> {
        let limit = self.config.handshake_timeout;
        let (opening, buf) = match timeout::<R, _>(limit, read_opening(&mut link)).await {
            Some(result) => result?,
            None => return Err(io::Error::new(io::ErrorKind::TimedOut, "no opening frame in time")),
        };
        match opening {
            Opening::Hello => {
                let (side, slot) = self
                    .registry
                    .start_session(self.config.clone(), Bytes::from(buf), source)?;
                let session = Session::from_shared(side.shared().clone());
                let driver = LinkDriver::new(side, link, R::Timer::default()).with_link_source(Box::new(slot));
                spawn_driver::<R, _>(driver);
                Ok(Accepted::New(session))
            }
            Opening::Resume { request, consumed } => {
                let rest = Bytes::copy_from_slice(&buf[consumed..]);
                match self.registry.resume(&request, link, rest, source) {
                    Ok(()) => Ok(Accepted::Resumed),
                    Err((refusal, mut link)) => {
                        refuse(&mut link, refusal).await;
                        Ok(Accepted::Refused(refusal))
                    }
                }
            }
        }
    }
}

/// A new link's opening frame, read without a byte past it (what follows
/// belongs to the session): every adapter's acceptor reads what
/// [`step`](OpeningReader::step) asks for and [`push`](OpeningReader::push)es it.
#[derive(Debug, Default)]
pub struct OpeningReader {
    read: Vec<u8>,
}

/// What an [`OpeningReader`] needs next.
#[derive(Debug)]
pub enum OpeningStep {
    /// Exactly this many more bytes.
    Read(usize),
    /// The opening is complete.
    Opened(Opening),
    /// Not an opening: answer with `ResumeRefusal::BadRequest`, close the
    /// link, and report this (`InvalidData`).
    Bad(io::Error),
}

/// A resume request is the longest opening: a header and 40 bytes.
const LONGEST_OPENING: usize = HEADER_LEN + 40;

impl OpeningReader {
    /// What to do next.
    pub fn step(&self) -> OpeningStep {
        if self.read.len() < HEADER_LEN {
            return OpeningStep::Read(HEADER_LEN - self.read.len());
        }
        match parse_opening(&self.read) {
            Ok(Some(opening)) => OpeningStep::Opened(opening),
            Ok(None) => OpeningStep::Read(LONGEST_OPENING.saturating_sub(self.read.len()).max(1)),
            Err(err) => OpeningStep::Bad(io::Error::new(io::ErrorKind::InvalidData, err)),
        }
    }

    /// Bytes read from the link, no more than the last step asked for.
    pub fn push(&mut self, bytes: &[u8]) {
        self.read.extend_from_slice(bytes);
    }

    /// Everything read: the opening, and for a hello the session's first bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.read
    }
}

/// Reads the opening frame (see [`OpeningReader`]), refusing a bad one.
async fn read_opening<L: Link>(link: &mut L) -> io::Result<(Opening, Vec<u8>)> {
    let mut reader = OpeningReader::default();
    let mut chunk = [0u8; LONGEST_OPENING];
    loop {
        match reader.step() {
            OpeningStep::Read(want) => {
                read_exact(link, &mut chunk[..want]).await?;
                reader.push(&chunk[..want]);
            }
            OpeningStep::Opened(opening) => return Ok((opening, reader.into_bytes())),
            OpeningStep::Bad(err) => {
                refuse(link, ResumeRefusal::BadRequest).await;
                return Err(err);
            }
        }
    }
}

async fn read_exact<L: Link>(link: &mut L, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = poll_fn(|cx| link.poll_read(cx, &mut buf[filled..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(())
}

/// Answers a refused link with the refusal and shuts it; the peer may be gone
/// already, so failures only end the attempt.
async fn refuse<L: Link>(link: &mut L, refusal: ResumeRefusal) {
    let frame = refusal.frame();
    let mut written = 0;
    while written < frame.len() {
        match poll_fn(|cx| link.poll_write_vectored(cx, &[IoSlice::new(&frame[written..])])).await {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    let _ = poll_fn(|cx| link.poll_flush(cx)).await;
    let _ = poll_fn(|cx| link.poll_shutdown(cx)).await;
}

#[cfg(test)]
mod tests {
    use hawser_core::frame::{Flags, FrameType, Header};
    use hawser_core::resume::{ResumeRequest, ResumeToken, Ticket};
    use hawser_core::Profile;

    use super::*;

    /// Feeds `link` to a reader as an acceptor would; returns the step it
    /// ended on and how many bytes it took.
    fn feed(link: &[u8]) -> (OpeningStep, usize) {
        let mut reader = OpeningReader::default();
        let mut taken = 0;
        loop {
            match reader.step() {
                OpeningStep::Read(want) => {
                    let Some(bytes) = link.get(taken..taken + want) else {
                        return (OpeningStep::Read(want), taken);
                    };
                    reader.push(bytes);
                    taken += want;
                }
                done => return (done, taken),
            }
        }
    }

    #[test]
    fn a_hello_is_known_from_its_header_and_nothing_more_is_read() {
        let mut link = Header::new(FrameType::Hello, Flags::NONE, 0, 30)
            .encode(Profile::Native)
            .to_vec();
        link.extend_from_slice(&[7; 30]);
        let (step, taken) = feed(&link);
        assert!(matches!(step, OpeningStep::Opened(Opening::Hello)), "{step:?}");
        assert_eq!(taken, HEADER_LEN, "the hello's payload is the session's to read");
    }

    #[test]
    fn a_resume_request_is_read_to_its_last_byte_and_not_one_past() {
        let request = ResumeRequest {
            ticket: Ticket {
                id: 42,
                token: ResumeToken::from_bytes([9; 16]),
            },
            received: 1234,
        };
        let mut link = request.encode();
        let request_len = link.len();
        link.extend_from_slice(b"the session's first frames");
        let (step, taken) = feed(&link);
        let OpeningStep::Opened(Opening::Resume {
            request: read,
            consumed,
        }) = step
        else {
            panic!("not a resume: {step:?}");
        };
        assert_eq!((read.ticket.id, read.received, consumed), (42, 1234, request_len));
        assert_eq!(taken, request_len);
    }

    #[test]
    fn anything_else_is_refused_after_one_header() {
        let (step, taken) = feed(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
        assert!(
            matches!(&step, OpeningStep::Bad(err) if err.kind() == io::ErrorKind::InvalidData),
            "{step:?}"
        );
        assert_eq!(taken, HEADER_LEN);
    }
}
