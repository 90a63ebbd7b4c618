//! # hawser-blocking
//!
//! hawser sessions for synchronous programs: a link that implements
//! `std::io::Read + Write` (a `TcpStream`, a `UnixStream`), streams that implement
//! `std::io::Read + Write`, and per-stream timeouts like `TcpStream`'s.
//!
//! ```
//! use std::io::{Read, Write};
//! use hawser_blocking::{Config, Listener, Session};
//!
//! # fn main() -> std::io::Result<()> {
//! let listener = Listener::bind("127.0.0.1:0", Config::default())?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || {
//!     // Echo every stream of every session.
//!     while let Ok((session, _peer)) = listener.accept() {
//!         std::thread::spawn(move || {
//!             while let Some(stream) = session.accept() {
//!                 let (mut from, mut to) = stream.split();
//!                 std::thread::spawn(move || std::io::copy(&mut from, &mut to));
//!             }
//!         });
//!     }
//! });
//!
//! let session = Session::connect(addr, Config::default())?;
//! let mut stream = session.open_stream()?;
//! stream.write_all(b"hello")?;
//! stream.finish()?;
//! let mut reply = Vec::new();
//! stream.read_to_end(&mut reply)?;
//! assert_eq!(reply, b"hello");
//! # Ok(()) }
//! ```
//!
//! Each session runs two threads: a reader that blocks on the link and feeds the
//! session, and a writer that sends the session's frames (vectored) and keeps its
//! timers. A write, flush or finish that finds the writer idle writes its frames
//! (up to 64 KiB) to the link from the calling thread, so a request/response
//! round trip does not wait for the writer thread to be scheduled, and the
//! writer is woken only when an input or a read leaves something to send. A resumable server session that has lost its link keeps neither: it
//! waits in its acceptor, whose one thread keeps the timers of all such sessions
//! and starts a writer again when a session's next link arrives. No thread holds the session's lock during a socket call, and no thread
//! busy-waits: callers blocked on a stream park until the session wakes them.
//! Dropping a [`Stream`] finishes it (written data still goes out, then a FIN);
//! what the peer still sends is discarded, up to 1 MiB or for 10 s, then the
//! stream is reset with `ResetCode::CANCEL`.
//! Dropping the last handle of a session (the [`Session`] and every `Stream`)
//! makes it go away with `NORMAL`, drain and close. An ended session shuts its
//! link for sending and reads (dropping what comes) until the peer closes too,
//! for at most 2 s, so that the peer's late window updates never meet a closed
//! socket, whose reset would destroy data the peer has not read yet; both
//! threads then end. [`Session::released`] waits for that point: a process
//! about to exit calls it after `closed`, so that its last frames are not
//! thrown away by the reset the kernel sends for a socket closed unread.
//!
//! Every blocking operation can be bounded: `Stream::set_read_timeout` and
//! `set_write_timeout`, `Session::open_stream_timeout`, `accept_timeout`,
//! `closed`, `resumable`, `next_health_event` and `next_link_event` take a
//! timeout; `finish` never blocks. The writer thread bounds each link write
//! (200 ms) and runs the session's timers in between, so a peer that stops
//! reading is still noticed by keepalive.
//!
//! Operations fail with `io::Error`s whose kind says what happened
//! (`ConnectionReset` for a reset, `ConnectionRefused` for a refused open,
//! `TimedOut` for a timeout or missed keepalives, `ConnectionAborted` once the
//! session is closed); [`reset_code`] gives a reset stream's code and
//! [`session_error`] why the session ended, without downcasting.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod direct;
mod early;
mod link;
mod net;
mod park;
mod pool;
mod request;
mod resume;
mod session;
mod stream;
mod wait;

pub use hawser_driver::common::*;
pub use link::BlockingLink;
pub use net::Listener;
pub use pool::{Pool, PoolStream};
pub use resume::{Accepted, Acceptor, Incoming};
pub use session::Session;
pub use stream::{ReadHalf, Stream, WriteHalf};
