//! # hawser-driver
//!
//! What the hawser adapters share, whatever the runtime:
//! - [`Shared`]: the core [`hawser_core::Session`] behind a mutex, with the wakers
//!   of every task (or thread) waiting on a stream, an accept or an open;
//! - [`StreamCore`]: the poll-style stream operations that each adapter wraps in
//!   its ecosystem's I/O traits;
//! - [`LinkDriver`]: a future that moves bytes between a [`Link`] and the session and
//!   keeps the session's timers with a [`Timer`]; the async adapters spawn it;
//! - [`slab`]: recycled 256 KiB slabs that stream writes are copied into and link
//!   reads fill, so that a fast link does not make the allocator fault memory in
//!   afresh; up to 8 MiB of used slabs wait for reuse, process-wide;
//! - [`session_pool`]: the policy of a pool of sessions (which session a stream
//!   goes to, when to dial, which sessions to take out), for the adapters' pools.
//!
//! The lock is never held across I/O: the driver takes what the session wants to
//! send under the lock, releases it, and writes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// For the adapters' macros (`declare_stream!`), which name core types.
#[doc(hidden)]
pub use hawser_core;

mod acceptor;
mod control;
mod errors;
mod events;
mod frames;
mod health;
mod link;
mod link_driver;
mod net;
mod open_queue;
mod permits;
mod registry;
mod request;
mod resume;
mod runtime;
mod session;
pub mod session_pool;
mod shared;
pub mod slab;
mod stream;

pub use acceptor::{Accepted, Acceptor, OpeningReader, OpeningStep};
pub use control::{ControlCore, OpenWait};
pub use errors::{reset_code, reset_reason, session_error};
pub use events::LinkEvent;
pub use frames::{FrameQueue, MAX_SLICES, WRITE_BATCH};
pub use health::{HealthEvent, Status};
pub use link::{Link, LinkSource, Timer};
pub use link_driver::{next_read_size, LinkDriver};
pub use net::{Incoming, Listener};
pub use registry::{AcceptorStats, Registry, SessionSlot, SourceAddr};
pub use request::{MessageError, RequestOptions, MESSAGE_PREFIX};
pub use resume::{check_config, check_resumable, entropy, FirstDial, RedialSchedule, RedialStep, RetryPolicy};
pub use runtime::{LinkOf, Runtime, TcpRuntime};
pub use session::{Control, Session, SessionDriver};
pub use shared::{live_sessions, Shared, SharedRef};
pub use stream::StreamCore;

/// Turns a session error into the `io::Error` every stream operation reports
/// after the session ended.
pub fn session_closed_error(reason: Option<hawser_core::SessionError>) -> std::io::Error {
    match reason {
        Some(err) => err.into(),
        None => std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the session is closed"),
    }
}

/// What every adapter re-exports under its own name: the core's
/// configuration, codes and errors, and the shared layer's events, status,
/// policies and error readers (`pub use hawser_driver::common::*;`).
pub mod common {
    pub use crate::session_pool::{PoolConfig, PoolConfigError, PoolStats};
    pub use crate::{
        live_sessions, reset_code, reset_reason, session_error, AcceptorStats, ControlCore, HealthEvent, LinkEvent,
        RequestOptions, RetryPolicy, Status,
    };
    pub use hawser_core::{
        Config, ConfigError, FinishError, GoAwayCode, HandshakeError, Limits, OpenError, Profile, ProtocolError,
        ReadError, ResetCode, ResumeRefusal, Resumption, Role, SessionError, Stats, StreamId, WriteError,
    };
}
