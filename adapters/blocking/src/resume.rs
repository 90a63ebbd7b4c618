//! Resumable sessions for synchronous programs: a client that redials after
//! losing its link, and a server acceptor for every accepted link.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hawser_core::frame::HEADER_LEN;
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal};
use hawser_core::{Config, Role};
use hawser_driver::{check_resumable, Registry, RetryPolicy, Shared};

use crate::link::BlockingLink;
use crate::session::{Redial, Session, Supply};

impl Session {
    /// A resumable client session: `connect` dials a link now, and again whenever
    /// the link is lost, under `retry`; streams stay open meanwhile and nothing
    /// written is lost or repeated. `config` (and the server's) must enable
    /// `resumption`.
    ///
    /// ```no_run
    /// use std::net::TcpStream;
    /// use hawser_blocking::{Config, Resumption, RetryPolicy, Session};
    ///
    /// # fn demo() -> std::io::Result<()> {
    /// let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    /// let session = Session::connect_resumable(|| TcpStream::connect("127.0.0.1:7000"), config, RetryPolicy::default())?;
    /// # Ok(()) }
    /// ```
    pub fn connect_resumable<L, F>(mut connect: F, config: Config, retry: RetryPolicy) -> io::Result<Session>
    where
        L: BlockingLink,
        F: FnMut() -> io::Result<L> + Send + 'static,
    {
        check_resumable(&config)?;
        let link = connect()?;
        let shared =
            Shared::new(Role::Client, config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let supply = Supply::Dial(Redial {
            dial: Box::new(connect),
            retry,
            attempt: 0,
            since: Instant::now(),
            next_at: None,
            resumes_seen: 0,
        });
        Session::start(shared, link, supply)
    }
}

/// What [`Acceptor::accept`] did with a link.
pub enum Accepted {
    /// It started a new session.
    New(Session),
    /// It resumed a detached session, which carries on over this link.
    Resumed,
    /// It refused a resume request; the link was answered and closed.
    Refused(ResumeRefusal),
}

/// The server side of resumable sessions: give it every accepted link. It reads
/// the link's first frame, so set a read timeout on the socket first if a client
/// might send nothing.
pub struct Acceptor<L> {
    config: Config,
    registry: Arc<Registry<L>>,
}

impl<L> Clone for Acceptor<L> {
    fn clone(&self) -> Self {
        Acceptor {
            config: self.config.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<L: BlockingLink> Acceptor<L> {
    /// An acceptor whose new sessions use `config` (which must enable resumption).
    pub fn new(config: Config) -> io::Result<Self> {
        check_resumable(&config)?;
        Ok(Acceptor {
            config,
            registry: Arc::default(),
        })
    }

    /// Starts a new session, resumes the detached one the link's resume request
    /// names, or refuses it (answering and closing the link).
    pub fn accept(&self, mut link: L) -> io::Result<Accepted> {
        let mut buf = vec![0u8; HEADER_LEN];
        link.read_exact(&mut buf)?;
        let opening = loop {
            match parse_opening(&buf) {
                Ok(Some(opening)) => break opening,
                Ok(None) => {
                    // A resume request is 52 bytes in all; read no further.
                    let mut more = [0u8; 40];
                    let want = (HEADER_LEN + 40).saturating_sub(buf.len()).clamp(1, more.len());
                    link.read_exact(&mut more[..want])?;
                    buf.extend_from_slice(&more[..want]);
                }
                Err(err) => {
                    let _ = link.write_all(&ResumeRefusal::BadRequest.frame());
                    let _ = link.shutdown();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            }
        };
        match opening {
            Opening::Hello => {
                let (shared, slot) = self.registry.start_session(self.config.clone(), Bytes::from(buf))?;
                Session::start(shared, link, Supply::Slot(slot)).map(Accepted::New)
            }
            Opening::Resume { request, consumed } => {
                let rest = Bytes::copy_from_slice(&buf[consumed..]);
                match self.registry.resume(&request, link, rest) {
                    Ok(()) => Ok(Accepted::Resumed),
                    Err((refusal, mut link)) => {
                        tracing::debug!(%refusal, "resume refused");
                        let _ = link.write_all(&refusal.frame());
                        let _ = link.shutdown();
                        Ok(Accepted::Refused(refusal))
                    }
                }
            }
        }
    }
}
