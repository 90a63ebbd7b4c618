//! # hawser-core
//!
//! The protocol engine of hawser, a stream multiplexer: many independent,
//! flow-controlled byte streams over one reliable ordered link. It is a pure state
//! machine. It does no I/O, never reads a clock, never spawns, never locks: bytes
//! and the time go in, frames, deadlines and events come out. The adapter crates
//! (`hawser-tokio`, `hawser-async-std`, `hawser-blocking`) drive it over real
//! sockets; programs with their own event loop drive it directly.
//!
//! Two wire profiles share one codec: [`Profile::Yamux`] speaks yamux byte for byte
//! (rust-yamux, go-yamux, hashicorp/yamux), [`Profile::Native`] adds a handshake and
//! error codes for hawser-to-hawser links. `PROTOCOL.md` specifies both.
//!
//! ## The run loop
//!
//! A [`Session`] is fed with
//! - [`Session::handle_input`]: bytes read from the link,
//! - [`Session::handle_timeout`]: the time, once [`Session::poll_timeout`] is reached,
//! - [`Session::handle_link_lost`]: the link failed,
//!
//! and drained of
//! - [`Session::poll_transmit`]: frames to write to the link, until `None`,
//! - [`Session::poll_event`]: what happened, until `None`,
//! - [`Session::poll_timeout`]: when to call `handle_timeout` next.
//!
//! Streams are opened with [`Session::open`], taken with [`Session::accept`], and
//! used through [`Session::stream`]. An operation that cannot proceed returns a
//! `Blocked` error; a later [`Event::Readable`], [`Event::Writable`] or
//! [`Event::CanOpen`] says when to retry. After every input, drain all three
//! outputs.
//!
//! Two sessions wired back to back, driven by hand:
//!
//! ```
//! use bytes::Bytes;
//! use hawser_core::{Config, Event, Instant, Role, Session};
//!
//! let now = Instant::ZERO;
//! let mut client = Session::new(Role::Client, Config::default(), now).unwrap();
//! let mut server = Session::new(Role::Server, Config::default(), now).unwrap();
//!
//! // Carry everything one side wants to send to the other.
//! fn pump(from: &mut Session, to: &mut Session, now: Instant) {
//!     while let Some(transmit) = from.poll_transmit(now) {
//!         let (header, payload) = transmit.into_parts();
//!         to.handle_input_slice(now, &header);
//!         to.handle_input(now, payload);
//!     }
//! }
//!
//! let id = client.open(now).unwrap();
//! client.stream(id).write(Bytes::from_static(b"hello")).unwrap();
//! client.stream(id).finish().unwrap();
//!
//! // A few round trips settle the handshake, the open and the data.
//! for _ in 0..3 {
//!     pump(&mut client, &mut server, now);
//!     pump(&mut server, &mut client, now);
//! }
//!
//! // The server hears of the stream, accepts it and reads to the end.
//! let mut received = Vec::new();
//! while let Some(event) = server.poll_event() {
//!     if event == Event::IncomingStream {
//!         while let Some(inbound) = server.accept() {
//!             while let Some(chunk) = server.stream(inbound).read(1024).unwrap() {
//!                 received.extend_from_slice(&chunk);
//!             }
//!         }
//!     }
//! }
//! assert_eq!(received, b"hello");
//!
//! // Nothing is due before the next keepalive.
//! assert!(client.poll_timeout().is_some());
//! ```
//!
//! ## Surviving link loss
//! With [`Config::resumption`] on both sides (native profile), a lost link
//! detaches the session instead of ending it: call
//! [`handle_link_lost`](Session::handle_link_lost), dial a new link, and on the
//! client call [`attach`](Session::attach); the server's acceptor reads the new
//! link's first frame with [`resume::parse_opening`] and passes the request to
//! [`handle_resume`](Session::handle_resume). Both sides replay what the other
//! missed; no byte is lost or repeated. The [`resume`] module explains the rest.
//!
//! ## Guarantees
//! - Nothing the peer sends can make the session panic; malformed input closes it
//!   with a [`ProtocolError`] and a go-away.
//! - Memory is bounded by [`Config`]: receive windows sum to at most
//!   `receive_budget`, send buffers to `session_send_buffer`, and every queue the
//!   peer can grow has a budget in [`Limits`].
//! - Received payload is handed out as [`bytes::Bytes`] slices of the input
//!   (pieces under 512 bytes are copied and coalesced instead); outgoing frames
//!   are a header plus the application's own `Bytes`. A slice keeps its whole
//!   input buffer alive, so a piece still unread after `2 × max_stream_window`
//!   more bytes of input is copied into memory of its own: the input buffers a
//!   session keeps alive are those of its recent input, whatever the peer
//!   sends ([`Stats::bytes_compacted`] counts the copies).
//! - Deterministic: no randomness, no clock, no random hashing.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod budget;
pub mod config;
pub mod error;
pub mod event;
mod flow;
pub mod frame;
mod ids;
pub mod resume;
mod session;
pub mod settings;
pub mod stats;
mod stream;
mod time;

pub use config::{Config, ConfigError, Limits, Liveness, Resumption, Role, YAMUX_INITIAL_WINDOW};
pub use error::{
    ClosedError, FinishError, GoAwayCode, OpenError, PingError, ProtocolError, ReadError, ResetCode, SessionError,
    WriteError,
};
pub use event::Event;
pub use frame::{FrameError, Profile};
pub use ids::IdHasher;
pub use resume::{ResumeRefusal, ResumeRequest, ResumeToken, Ticket};
pub use session::{AttachError, Session, Stream, Transmit, TransmitHeader};
pub use settings::{HandshakeError, Settings};
pub use stats::Stats;
pub use stream::StreamId;
pub use time::Instant;
