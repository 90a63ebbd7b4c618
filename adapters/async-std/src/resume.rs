//! Resumable sessions over futures-io links: a client that redials after losing
//! its link, and a server acceptor for every accepted link. As with
//! [`Session::new`], the driver future is returned for the caller to spawn on any
//! executor.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use hawser_core::frame::HEADER_LEN;
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal};
use hawser_core::Config;
use hawser_driver::{check_resumable, resumable_client, Dial, Driver, Registry, RetryPolicy};

use crate::session::{AsyncIoTimer, FuturesLink, Session, SessionDriver};

impl Session {
    /// A resumable client session and its driver (spawn it): `connect` dials a
    /// link now, and again whenever the link is lost, under `retry`. `config` (and
    /// the server's) must enable `resumption`.
    pub async fn connect_resumable<F, Fut, T>(
        mut connect: F,
        config: Config,
        retry: RetryPolicy,
    ) -> io::Result<(Session, SessionDriver<T>)>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        check_resumable(&config)?;
        let link = connect().await?;
        let dial = move || -> Dial<FuturesLink<T>> {
            let connecting = connect();
            Box::pin(async move { connecting.await.map(FuturesLink) })
        };
        let (shared, driver) = resumable_client::<_, AsyncIoTimer>(config, FuturesLink(link), Box::new(dial), retry)?;
        Ok((Session::from_shared(shared), driver))
    }
}

/// What [`Acceptor::accept`] did with a link.
pub enum Accepted<T> {
    /// A new session, and its driver to spawn.
    New(Session, Box<SessionDriver<T>>),
    /// It resumed a detached session, which carries on over this link.
    Resumed,
    /// It refused a resume request; the link was answered and closed.
    Refused(ResumeRefusal),
}

/// The server side of resumable sessions: give it every accepted link.
pub struct Acceptor<T> {
    config: Config,
    registry: Arc<Registry<FuturesLink<T>>>,
}

impl<T> Clone for Acceptor<T> {
    fn clone(&self) -> Self {
        Acceptor {
            config: self.config.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Acceptor<T> {
    /// An acceptor whose new sessions use `config` (which must enable resumption).
    pub fn new(config: Config) -> io::Result<Self> {
        check_resumable(&config)?;
        Ok(Acceptor {
            config,
            registry: Arc::default(),
        })
    }

    /// Reads the link's first frame and starts a new session, resumes the detached
    /// one it names, or refuses it (answering and closing the link). Bound the
    /// wait with your executor's timeout if a client might send nothing.
    pub async fn accept(&self, mut link: T) -> io::Result<Accepted<T>> {
        let mut buf = vec![0u8; HEADER_LEN];
        read_exact(&mut link, &mut buf).await?;
        let opening = loop {
            match parse_opening(&buf) {
                Ok(Some(opening)) => break opening,
                Ok(None) => {
                    // A resume request is 52 bytes in all; read no further.
                    let mut more = [0u8; 40];
                    let want = (HEADER_LEN + 40).saturating_sub(buf.len()).clamp(1, more.len());
                    read_exact(&mut link, &mut more[..want]).await?;
                    buf.extend_from_slice(&more[..want]);
                }
                Err(err) => {
                    refuse(&mut link, ResumeRefusal::BadRequest).await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            }
        };
        match opening {
            Opening::Hello => {
                let (shared, slot) = self.registry.start_session(self.config.clone(), Bytes::from(buf))?;
                let driver = Driver::new(shared.clone(), FuturesLink(link), AsyncIoTimer::default())
                    .with_link_source(Box::new(slot));
                Ok(Accepted::New(Session::from_shared(shared), Box::new(driver)))
            }
            Opening::Resume { request, consumed } => {
                let rest = Bytes::copy_from_slice(&buf[consumed..]);
                match self.registry.resume(&request, FuturesLink(link), rest) {
                    Ok(()) => Ok(Accepted::Resumed),
                    Err((refusal, FuturesLink(mut link))) => {
                        tracing::debug!(%refusal, "resume refused");
                        refuse(&mut link, refusal).await;
                        Ok(Accepted::Refused(refusal))
                    }
                }
            }
        }
    }
}

async fn read_exact<T: AsyncRead + Unpin>(link: &mut T, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = poll_fn(|cx| Pin::new(&mut *link).poll_read(cx, &mut buf[filled..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(())
}

async fn refuse<T: AsyncWrite + Unpin>(link: &mut T, refusal: ResumeRefusal) {
    let frame = refusal.frame();
    let mut written = 0;
    while written < frame.len() {
        match poll_fn(|cx| Pin::new(&mut *link).poll_write(cx, &frame[written..])).await {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    let _ = poll_fn(|cx| Pin::new(&mut *link).poll_close(cx)).await;
}
