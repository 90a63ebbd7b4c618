//! # hawser-driver
//!
//! What the hawser adapters share, whatever the runtime:
//! - [`ControlCore`] and [`StreamCore`]: the poll-style session and stream
//!   operations that each adapter wraps (in its ecosystem's I/O traits, or in
//!   blocking calls);
//! - [`LinkSide`] and [`ReadPump`]: the link pump, the rules of moving a
//!   session's bytes over its link, written once: [`LinkDriver`] (a future
//!   over a [`Link`] and a [`Timer`], which the async adapters spawn) drives
//!   it, and so do hawser-blocking's reader and writer threads;
//! - [`slab`]: recycled 256 KiB slabs that stream writes are copied into and link
//!   reads fill, so that a fast link does not make the allocator fault memory in
//!   afresh; up to 8 MiB of used slabs wait for reuse, process-wide;
//! - [`session_pool`]: the policy of a pool of sessions (which session a stream
//!   goes to, when to dial, which sessions to take out), for the adapters' pools.
//!
//! The session and the wakers of everything waiting on it live behind one
//! mutex, reached only through these handles. The lock is never held across
//! I/O: the driver takes what the session wants to send under the lock,
//! releases it, and writes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// For the adapters' macros (`declare_stream!`), which name core types.
#[doc(hidden)]
pub use hawser_core;
// For the adapters' macros, which name `Bytes`.
#[doc(hidden)]
pub use bytes;

mod acceptor;
mod control;
mod errors;
mod events;
mod forward;
mod frames;
mod health;
mod link;
mod link_driver;
mod net;
mod open_queue;
mod permits;
mod pump;
mod registry;
mod request;
mod resume;
mod runtime;
mod session;
pub mod session_pool;
mod shared;
pub mod slab;
mod stream;
mod tcp;

pub use acceptor::{Accepted, Acceptor, OpeningReader, OpeningStep};
pub use control::{ControlCore, OpenWait};
pub use errors::{reset_code, reset_reason, session_error};
pub use events::LinkEvent;
#[doc(hidden)]
pub use forward::{read_chunk, write_bytes, HasStreamCore};
pub use frames::{FrameQueue, MAX_SLICES, WRITE_BATCH};
pub use health::{HealthEvent, Status};
pub use link::{Link, LinkSource, Timer};
pub use link_driver::LinkDriver;
pub use net::{Incoming, Listener};
pub use pump::{Input, LinkGeneration, LinkSide, Plan, ReadPump, LINGER};
pub use registry::{AcceptorStats, Registry, SessionSlot, SourceAddr};
pub use request::{MessageError, RequestOptions, MESSAGE_PREFIX};
pub use resume::{check_config, check_resumable, entropy, FirstDial, RedialSchedule, RedialStep, RetryPolicy};
pub use runtime::{LinkOf, Runtime, TcpRuntime};
pub use session::{Control, Session, SessionDriver};
pub use shared::live_sessions;
pub use stream::{SplitCore, StreamCore};
pub use tcp::{tune_tcp, NOTSENT_LOWAT};

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
        live_sessions, reset_code, reset_reason, session_error, tune_tcp, AcceptorStats, ControlCore, HealthEvent,
        LinkEvent, RequestOptions, RetryPolicy, Status, NOTSENT_LOWAT,
    };
    pub use hawser_core::{
        Config, ConfigError, FinishError, GoAwayCode, HandshakeError, Limits, OpenError, Profile, ProtocolError,
        ReadError, ResetCode, ResumeRefusal, Resumption, Role, SessionError, Stats, StreamId, WriteError,
    };
}
