//! What the session tells the application, through [`Session::poll_event`](crate::Session::poll_event).

use core::time::Duration;

use crate::error::{GoAwayCode, ResetCode, SessionError};
use crate::stream::StreamId;

/// Something the application should know or act on.
///
/// Stream events are edge-triggered and deduplicated: `Readable` follows a read
/// that returned `Blocked` (or a new stream's first data), `Writable` follows a
/// write that returned `Blocked`. The queue therefore never holds more than a few
/// events per stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Native profile: the peer's hello arrived and was accepted.
    Connected,
    /// At least one inbound stream waits in [`Session::accept`](crate::Session::accept).
    IncomingStream,
    /// The peer acknowledged a stream this side opened.
    StreamAcknowledged(StreamId),
    /// Data or the end of the stream can be read on this stream. It also
    /// follows [`Session::accept`](crate::Session::accept) when data or the end
    /// arrived before the stream was accepted. A reset is announced by
    /// [`Event::StreamReset`] instead.
    Readable(StreamId),
    /// This stream can take more data.
    Writable(StreamId),
    /// The stream was reset: by the peer, or by this side's open/close/drain
    /// timers. Raised only for streams the application holds (opened or
    /// accepted). Delivering it releases the stream's slot (a
    /// [`StreamClosed`](Event::StreamClosed) follows: at once for the peer's
    /// reset, once the RST is out for this side's own), so
    /// an application may forget the stream here; reads, writes and finishes
    /// on it still return the reset's code afterwards, for the last 256 streams
    /// released this way, and `UnknownStream` for older ones.
    StreamReset {
        /// The stream.
        id: StreamId,
        /// Why.
        code: ResetCode,
    },
    /// A stream finished in both directions and its state was released.
    StreamClosed(StreamId),
    /// An open that returned `Blocked` may now succeed.
    CanOpen,
    /// A ping this side sent was answered.
    Pong {
        /// The round-trip time it measured.
        rtt: Duration,
    },
    /// The link's health changed: pings started going unanswered, or were answered again.
    HealthChanged {
        /// Consecutive unanswered keepalive pings; 0 means healthy.
        missed_pings: u32,
    },
    /// The link is suspect: something that needs an answer (a ping, or a frame
    /// sent after the peer last sent anything) has had none, and nothing else
    /// came, for longer than the silence bound (see [`Liveness`](crate::Liveness)).
    /// The session carries on; a resumable client may dial another link.
    LinkSuspect {
        /// How long the peer has been silent.
        silent_for: Duration,
    },
    /// Input arrived on a link that was suspect: it is making progress again.
    LinkResponsive,
    /// The peer sent a go-away: no new streams; the session closes when the live
    /// ones finish.
    GoAwayReceived(GoAwayCode),
    /// Resumption: the link was lost and the session is detached. Streams stay
    /// open; nothing is sent until a new link is attached (client:
    /// [`Session::attach`](crate::Session::attach); server:
    /// [`Session::handle_resume`](crate::Session::handle_resume)). Drop the old link.
    Detached,
    /// Resumption: the session continues over a new link.
    Resumed {
        /// Bytes this side sent again because the peer had not received them.
        replayed: u64,
    },
    /// Resumption, client: the server refused this attempt but the session may
    /// still be resumed later ([`GoAwayCode::RESUME_RATE_LIMITED`]: too many
    /// failed attempts lately). Drop the new link and retry after a while. A
    /// refusal that cannot succeed later ends the session instead.
    ResumeRefused(GoAwayCode),
    /// The session has ended; `None` for an orderly end (drain completed).
    Closed(Option<SessionError>),
}
