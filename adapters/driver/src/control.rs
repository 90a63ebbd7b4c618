//! Session-level operations shared by every adapter's session handle.

use std::io;
use std::task::{Context, Poll};

use hawser_core::{GoAwayCode, OpenError, Session, SessionError, Stats};

use crate::events::LinkEvent;
use crate::health::{HealthEvent, Status};
use crate::shared::{Shared, SharedRef};
use crate::stream::StreamCore;

/// The session-wide operations (open, accept, go away, health) in poll form.
/// Every `ControlCore` and [`StreamCore`](crate::StreamCore) counts as a handle of
/// the session: once the last one is dropped, the session goes away with
/// `NORMAL` and closes when its streams have drained.
pub struct ControlCore {
    shared: SharedRef,
}

impl ControlCore {
    /// Operations on `shared`.
    pub(crate) fn new(shared: SharedRef) -> Self {
        Shared::lock(&shared).acquire_handle();
        ControlCore { shared }
    }

    /// A wait to open one stream: poll it until it gives the stream. The waits
    /// of a session are served in order, and dropping one gives up its place
    /// (cancel-safe: it opens no stream unless it returned one).
    pub fn open_wait(&self) -> OpenWait {
        OpenWait {
            shared: self.shared.clone(),
            place: None,
        }
    }

    /// The next inbound stream; `None` once the session is closed or draining.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<StreamCore>> {
        let mut shared = Shared::lock(&self.shared);
        // Accepting queues the acknowledgement.
        if let Some(id) = shared.change_now(Session::accept) {
            return Poll::Ready(Some(StreamCore::adopted(&self.shared, &mut shared, id)));
        }
        let session = shared.session_ref();
        if session.is_closed() || session.is_draining() {
            return Poll::Ready(None);
        }
        shared.register_accept(cx.waker());
        Poll::Pending
    }

    /// Ends a drain at once (see [`hawser_core::Session::end_drain`]): the
    /// streams still open are reset with `DRAIN_TIMEOUT`, the peer reads the
    /// resets, and the session closes. For a shutdown whose own deadline ran
    /// out; [`close`](Self::close) instead would leave the peer's streams to
    /// its own drain timeout.
    pub fn end_drain(&self) {
        Shared::lock(&self.shared).change(|session, now| session.end_drain(now));
    }

    /// Starts a graceful shutdown (see [`hawser_core::Session::go_away`]).
    pub fn go_away(&self, code: GoAwayCode) -> io::Result<()> {
        self.go_away_with_reason(code, "")
    }

    /// [`go_away`](Self::go_away) with a reason the peer can read (native
    /// profile; at most 256 bytes, a longer one is cut at a character
    /// boundary; the yamux profile sends the code alone).
    pub fn go_away_with_reason(&self, code: GoAwayCode, reason: &str) -> io::Result<()> {
        let result = Shared::lock(&self.shared).change(|session, now| session.go_away_with_reason(now, code, reason));
        result.map_err(|err| io::Error::new(io::ErrorKind::NotConnected, err))
    }

    /// Closes the session at once with `code`.
    pub fn close(&self, code: GoAwayCode) {
        self.close_with_reason(code, "");
    }

    /// [`close`](Self::close) with a reason, as for
    /// [`go_away_with_reason`](Self::go_away_with_reason).
    pub fn close_with_reason(&self, code: GoAwayCode, reason: &str) {
        Shared::lock(&self.shared).change_now(|session| session.close_with_reason(code, reason));
    }

    /// The reason the peer gave with its go-away, if it sent one with a
    /// reason (native profile); its code is in `HealthEvent::GoAwayReceived`
    /// and, for an error code, in the session's end.
    pub fn peer_go_away_reason(&self) -> Option<String> {
        Shared::lock(&self.shared)
            .session_ref()
            .peer_go_away_reason()
            .map(String::from)
    }

    /// Sends a ping now; the RTT shows up in [`status`](Self::status).
    pub fn ping(&self) -> io::Result<()> {
        let result = Shared::lock(&self.shared).change(|session, now| session.ping(now));
        result.map_err(|err| io::Error::new(io::ErrorKind::WouldBlock, err))
    }

    /// A snapshot of the session's health and load: round trips, missed pings,
    /// time since the last pong, unhealthy episodes, reconnects, open streams and
    /// streams waiting to be accepted.
    pub fn status(&self) -> Status {
        Shared::lock(&self.shared).status()
    }

    /// The next [`HealthEvent`] (pong, missed ping, unhealthy, recovered, go-away
    /// received); `None` once the session has ended and none are left. At most 64
    /// wait; older ones are dropped.
    pub fn poll_health_event(&self, cx: &mut Context<'_>) -> Poll<Option<HealthEvent>> {
        Shared::lock(&self.shared).poll_health_event(cx)
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        Shared::lock(&self.shared).session_ref().stats()
    }

    /// Bytes received on all streams and not yet read.
    pub fn buffered_receive(&self) -> u64 {
        Shared::lock(&self.shared).session_ref().buffered_receive()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        Shared::lock(&self.shared).session_ref().is_closed()
    }

    /// Why the session ended abnormally, once it has.
    pub fn close_reason(&self) -> Option<SessionError> {
        Shared::lock(&self.shared).session_ref().close_reason()
    }

    /// Resumption: the next link event (lost, reconnecting, resumed, gave up);
    /// `None` once the session has ended and none are left.
    pub fn poll_link_event(&self, cx: &mut Context<'_>) -> Poll<Option<LinkEvent>> {
        let mut shared = Shared::lock(&self.shared);
        let closed = shared.session_ref().is_closed();
        shared.link_events.poll_next(cx, closed)
    }

    /// Ready once the session has ended and its driver has stopped (the link is
    /// shut): `None` for an orderly end, otherwise why it ended.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<Option<SessionError>> {
        self.poll_end(cx, Shared::is_finished)
    }

    /// Ready once the session has ended and its driver has let go of its link:
    /// after [`poll_closed`](Self::poll_closed), once the peer has closed its
    /// side too (so it has read everything this side sent, the last go-away
    /// and resets included), or the driver's [`LINGER`](crate::LINGER) has
    /// passed, or at once when there was no link. `None` for an orderly end,
    /// otherwise why it ended.
    ///
    /// A process that exits as soon as the session is closed can lose its
    /// last frames: the kernel answers a socket closed with unread data by
    /// resetting the connection, and a reset throws away what the peer has
    /// not read yet. Waiting for this first avoids that.
    pub fn poll_released(&self, cx: &mut Context<'_>) -> Poll<Option<SessionError>> {
        self.poll_end(cx, Shared::is_released)
    }

    /// Ready with why the session ended once `reached` holds.
    fn poll_end(&self, cx: &mut Context<'_>, reached: fn(&Shared) -> bool) -> Poll<Option<SessionError>> {
        let mut shared = Shared::lock(&self.shared);
        if reached(&shared) {
            return Poll::Ready(shared.session_ref().close_reason());
        }
        shared.register_lifecycle(cx.waker());
        Poll::Pending
    }

    /// Resumption: ready once the session would survive losing its link (the
    /// handshake and the ticket exchange are done), or with the error that ended
    /// it first.
    pub fn poll_resumable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = Shared::lock(&self.shared);
        if shared.session_ref().is_resumable() {
            return Poll::Ready(Ok(()));
        }
        if shared.session_ref().is_closed() {
            return Poll::Ready(Err(shared.closed_error()));
        }
        shared.register_lifecycle(cx.waker());
        Poll::Pending
    }

    /// Resumption: reconnect attempts made so far (client).
    pub fn reconnects(&self) -> u64 {
        Shared::lock(&self.shared).link_events.reconnects
    }

    /// Resumption: whether the session would survive losing its link now (the
    /// handshake and the ticket exchange are done).
    pub fn is_resumable(&self) -> bool {
        Shared::lock(&self.shared).session_ref().is_resumable()
    }

    /// Resumption: whether the session is waiting for a new link.
    pub fn is_detached(&self) -> bool {
        Shared::lock(&self.shared).session_ref().is_detached()
    }
}

impl Clone for ControlCore {
    fn clone(&self) -> Self {
        ControlCore::new(self.shared.clone())
    }
}

impl Drop for ControlCore {
    fn drop(&mut self) {
        Shared::lock(&self.shared).release_handle();
    }
}

/// One task's wait to open a stream (see [`ControlCore::open_wait`]).
pub struct OpenWait {
    shared: SharedRef,
    place: crate::open_queue::Place,
}

impl OpenWait {
    /// Opens the stream, or waits while a limit (max streams, unacknowledged
    /// opens) is reached.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<StreamCore>> {
        let mut shared = Shared::lock(&self.shared);
        match shared.change(|session, now| session.open(now)) {
            Ok(id) => {
                shared.open_queue.opened(&mut self.place);
                // There may be room for the next one too.
                shared.open_queue.wake_next();
                Poll::Ready(Ok(StreamCore::adopted(&self.shared, &mut shared, id)))
            }
            Err(OpenError::Blocked) => {
                shared.open_queue.register(&mut self.place, cx.waker());
                Poll::Pending
            }
            Err(OpenError::SessionClosed) => {
                shared.open_queue.opened(&mut self.place);
                Poll::Ready(Err(shared.closed_error()))
            }
            Err(err) => {
                shared.open_queue.opened(&mut self.place);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, err)))
            }
        }
    }
}

impl Drop for OpenWait {
    fn drop(&mut self) {
        if self.place.is_some() {
            Shared::lock(&self.shared).open_queue.leave(&mut self.place);
        }
    }
}
