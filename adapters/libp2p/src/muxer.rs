//! The stream muxer: one hawser session whose driver runs inside the
//! connection's own polls.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use hawser_async_std::{AsyncIoTimer, FuturesLink};
use hawser_core::{GoAwayCode, Role};
use hawser_driver::{ControlCore, LinkDriver, OpenWait, Status};
use libp2p_core::muxing::{StreamMuxer, StreamMuxerEvent};

use crate::Substream;

/// A hawser session over one libp2p connection, as libp2p's
/// [`StreamMuxer`]. Made by the [`Config`](crate::Config) upgrade.
///
/// The session runs in the connection's task: every `poll_*` method first
/// drives it (reads the link, runs timers, writes what the streams queued),
/// and nothing is spawned. Inbound streams wait in the session's accept
/// backlog until [`poll_inbound`](StreamMuxer::poll_inbound) takes them, so
/// the swarm's pace of accepting is the peer's backpressure: a yamux peer
/// opens no more than 256 streams that this side has not acknowledged, and
/// a stream is acknowledged when it is accepted.
///
/// A go-away from either side (a hawser peer's, or [`poll_close`]) does not
/// end the connection at once, as it does with `libp2p-yamux`: no new
/// streams open either way, the open ones finish, and then
/// [`poll`](StreamMuxer::poll) reports the end.
///
/// [`poll_close`]: StreamMuxer::poll_close
pub struct Muxer<C> {
    control: ControlCore,
    /// `None` once the session has ended.
    driver: Option<LinkDriver<FuturesLink<C>, AsyncIoTimer>>,
    /// The open under way, kept between polls so that it keeps its place.
    opening: Option<OpenWait>,
    /// `poll_close` sent the go-away.
    going_away: bool,
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    pub(crate) fn new(io: C, config: hawser_core::Config, role: Role) -> io::Result<Self> {
        let (driver, control) = LinkDriver::with_session(FuturesLink::new(io), AsyncIoTimer::default(), config, role)?;
        Ok(Muxer {
            control,
            driver: Some(driver),
            opening: None,
            going_away: false,
        })
    }
}

impl<C> Muxer<C> {
    /// The session's health: smoothed RTT, missed pings, whether the link is
    /// suspect.
    pub fn status(&self) -> Status {
        self.control.status()
    }

    /// The session's counters (streams, frames and bytes each way).
    pub fn stats(&self) -> hawser_core::Stats {
        self.control.stats()
    }

    /// Why the session ended: an error for every operation after the end.
    fn ended(&self) -> io::Error {
        hawser_driver::session_closed_error(self.control.close_reason())
    }
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    /// Drives the session; `Ready` once it has ended (then always).
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(driver) = self.driver.as_mut() else {
            return Poll::Ready(Err(self.ended()));
        };
        let end = std::task::ready!(Pin::new(driver).poll(cx));
        self.driver = None;
        if let Err(err) = &end {
            tracing::debug!(%err, "session ended");
        }
        Poll::Ready(end)
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Substream = Substream;
    type Error = io::Error;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Substream>> {
        let this = self.get_mut();
        let _ = this.drive(cx);
        match this.control.poll_accept(cx) {
            Poll::Ready(Some(core)) => Poll::Ready(Ok(Substream::new(core))),
            Poll::Ready(None) if this.control.is_closed() => Poll::Ready(Err(this.ended())),
            // Draining after a go-away: no stream will come, but an error
            // here would make the swarm close the connection and reset the
            // streams that are finishing. `poll` reports the end.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Substream>> {
        let this = self.get_mut();
        let _ = this.drive(cx);
        let opening = this.opening.get_or_insert_with(|| this.control.open_wait());
        let opened = std::task::ready!(opening.poll(cx));
        this.opening = None;
        match opened {
            Ok(core) => Poll::Ready(Ok(Substream::new(core))),
            Err(err) if this.control.is_closed() => Poll::Ready(Err(err)),
            // Going away: as for inbound streams, the end is `poll`'s to
            // report; the handler that asked gives up on its own timeout.
            Err(_) => Poll::Pending,
        }
    }

    /// Goes away (no new streams either way), lets the open streams finish
    /// (for up to the configuration's `drain_timeout`), and closes the link.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.going_away {
            this.going_away = true;
            // A session that already ended has nothing to tell the peer.
            let _ = this.control.go_away(GoAwayCode::NORMAL);
        }
        if this.driver.is_none() {
            // It ended before: there is nothing left to close.
            return Poll::Ready(Ok(()));
        }
        this.drive(cx)
    }

    /// Runs the session; it yields no events (a hawser session's address
    /// never changes), and an error once the session has ended.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<StreamMuxerEvent>> {
        let this = self.get_mut();
        match std::task::ready!(this.drive(cx)) {
            Ok(()) => Poll::Ready(Err(this.ended())),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl<C> std::fmt::Debug for Muxer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxer")
            .field("ended", &self.driver.is_none())
            .field("going_away", &self.going_away)
            .finish_non_exhaustive()
    }
}
