//! Poll-style stream operations, shared by the async adapters (and, through a
//! thread-parking waker, by the blocking one).

use std::io;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hawser_core::{FinishError, ReadError, ResetCode, StreamId, WriteError};

use crate::errors::with_reason;
use crate::shared::{Shared, SharedRef};

/// One stream of a shared session: the operations every adapter's stream type
/// wraps. Dropping it finishes the stream (queued data still goes out, then a
/// FIN) and discards whatever the peer still sends, up to 1 MiB or for 10 s;
/// then the stream is reset with `ResetCode::CANCEL`.
pub struct StreamCore {
    shared: SharedRef,
    id: StreamId,
    read_done: bool,
    write_done: bool,
    /// The code the stream was reset with, once an operation saw the reset (or
    /// this side reset it): the session may release a reset stream, and every
    /// later operation must still report the reset, not an unknown stream.
    reset: Option<ResetCode>,
    /// The reason that came with the reset (native profile), kept with it.
    reason: Option<Box<str>>,
    /// Whether writes, flushes and finishes hand the driver's wake-up to the
    /// caller instead of waking it (see [`StreamCore::defer_driver_wakes`]).
    defer_wakes: bool,
    /// The driver wake-up the last such operation handed over.
    deferred: Option<Waker>,
}

/// Hands the driver's waker to the caller, or wakes the driver.
fn wake_or_defer(shared: &mut Shared, defer: bool, deferred: &mut Option<Waker>) {
    if !defer {
        shared.wake_driver();
    } else if let Some(waker) = shared.take_driver_waker() {
        *deferred = Some(waker);
    }
}

impl StreamCore {
    /// A handle for stream `id`, made under the lock that opened or accepted
    /// it, so that no event for the stream can come between.
    pub(crate) fn adopted(shared: &SharedRef, locked: &mut Shared, id: StreamId) -> Self {
        locked.acquire_handle();
        locked.adopt(id);
        let shared = shared.clone();
        StreamCore {
            shared,
            id,
            read_done: false,
            write_done: false,
            reset: None,
            reason: None,
            defer_wakes: false,
            deferred: None,
        }
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// From now on, a write, flush or finish that gives the link driver work
    /// does not wake it: it takes the driver's waker and leaves it for
    /// [`take_deferred_wake`](Self::take_deferred_wake). For an adapter that
    /// can do the driver's work on the calling thread (hawser-blocking writes
    /// the frames itself when its writer thread is idle).
    pub fn defer_driver_wakes(&mut self) {
        self.defer_wakes = true;
    }

    /// The driver wake-up the last write, flush or finish handed over, if
    /// any: act on it (do the driver's work, or wake it) before waiting.
    pub fn take_deferred_wake(&mut self) -> Option<Waker> {
        self.deferred.take()
    }

    /// The session this stream belongs to.
    pub fn shared(&self) -> &SharedRef {
        &self.shared
    }

    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.poll_read_chunk(cx, buf.len()).map_ok(|chunk| match chunk {
            Some(chunk) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                chunk.len()
            }
            None => 0,
        })
    }

    /// Reads the next chunk without copying; `Ok(None)` is the end of the stream.
    pub fn poll_read_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Option<Bytes>>> {
        if self.read_done {
            return Poll::Ready(Ok(None));
        }
        if let Some(code) = self.reset {
            return Poll::Ready(Err(with_reason(ReadError::Reset(code), &self.reason)));
        }
        let mut shared = Shared::lock(&self.shared);
        if let Some(code) = Self::announced_reset(&shared, self.id, &mut self.reset, &mut self.reason) {
            return Poll::Ready(Err(with_reason(ReadError::Reset(code), &self.reason)));
        }
        let id = self.id;
        // Reading may owe the peer a window update.
        let result = shared.change_checking(
            |session| session.stream(id).read(max),
            |read| matches!(read, Ok(Some(_))),
        );
        match result {
            Ok(Some(chunk)) => Poll::Ready(Ok(Some(chunk))),
            Ok(None) => {
                self.read_done = true;
                Poll::Ready(Ok(None))
            }
            Err(ReadError::Blocked) => {
                shared.register_read(self.id, cx.waker());
                Poll::Pending
            }
            Err(ReadError::SessionClosed) => Poll::Ready(Err(shared.closed_error())),
            Err(err) => {
                if let ReadError::Reset(code) = err {
                    Self::note_reset(&shared, self.id, code, &mut self.reset, &mut self.reason);
                }
                Poll::Ready(Err(with_reason(err, &self.reason)))
            }
        }
    }

    /// Queues `data` (a prefix of it when the buffers are nearly full).
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Some(code) = self.reset {
            return Poll::Ready(Err(with_reason(WriteError::Reset(code), &self.reason)));
        }
        let mut shared = Shared::lock(&self.shared);
        if let Some(code) = Self::announced_reset(&shared, self.id, &mut self.reset, &mut self.reason) {
            return Poll::Ready(Err(with_reason(WriteError::Reset(code), &self.reason)));
        }
        let id = self.id;
        let room = shared.session().stream(id).writable_bytes();
        let take = data.len().min(room.max(1));
        let copy = shared.copy_in(&data[..take]);
        let defer = self.defer_wakes;
        let result = shared.change_waking(|session| session.stream(id).write(copy), |r| r.is_ok() && !defer);
        if defer && result.is_ok() {
            wake_or_defer(&mut shared, true, &mut self.deferred);
        }
        Self::finish_write(&mut shared, self.id, cx, result, &mut self.reset, &mut self.reason)
    }

    /// Queues `data` without copying.
    pub fn poll_write_bytes(&mut self, cx: &mut Context<'_>, data: &Bytes) -> Poll<io::Result<usize>> {
        if let Some(code) = self.reset {
            return Poll::Ready(Err(with_reason(WriteError::Reset(code), &self.reason)));
        }
        let mut shared = Shared::lock(&self.shared);
        if let Some(code) = Self::announced_reset(&shared, self.id, &mut self.reset, &mut self.reason) {
            return Poll::Ready(Err(with_reason(WriteError::Reset(code), &self.reason)));
        }
        let id = self.id;
        let defer = self.defer_wakes;
        let result = shared.change_waking(
            |session| session.stream(id).write(data.clone()),
            |r| r.is_ok() && !defer,
        );
        if defer && result.is_ok() {
            wake_or_defer(&mut shared, true, &mut self.deferred);
        }
        Self::finish_write(&mut shared, self.id, cx, result, &mut self.reset, &mut self.reason)
    }

    /// A reset the session announced (and released the stream on): from now
    /// on this handle reports it without asking the session.
    fn announced_reset(
        shared: &Shared,
        id: StreamId,
        reset: &mut Option<ResetCode>,
        reason: &mut Option<Box<str>>,
    ) -> Option<ResetCode> {
        let code = shared.announced_reset(id)?;
        Self::note_reset(shared, id, code, reset, reason);
        Some(code)
    }

    /// Keeps the code of a reset this handle has seen, and its reason.
    fn note_reset(
        shared: &Shared,
        id: StreamId,
        code: ResetCode,
        reset: &mut Option<ResetCode>,
        reason: &mut Option<Box<str>>,
    ) {
        *reset = Some(code);
        if reason.is_none() {
            *reason = shared.session_ref().reset_reason(id).map(Box::from);
        }
    }

    fn finish_write(
        shared: &mut Shared,
        id: StreamId,
        cx: &mut Context<'_>,
        result: Result<usize, WriteError>,
        reset: &mut Option<ResetCode>,
        reason: &mut Option<Box<str>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(WriteError::Blocked) => {
                shared.register_write(id, cx.waker());
                Poll::Pending
            }
            Err(WriteError::SessionClosed) => Poll::Ready(Err(shared.closed_error())),
            Err(err) => {
                if let WriteError::Reset(code) = err {
                    Self::note_reset(shared, id, code, reset, reason);
                }
                Poll::Ready(Err(with_reason(err, reason)))
            }
        }
    }

    /// Waits until everything written so far has been handed to the link.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = Shared::lock(&self.shared);
        if shared.closed().is_some() {
            return Poll::Ready(if shared.session_ref().close_reason().is_none() {
                Ok(())
            } else {
                Err(shared.closed_error())
            });
        }
        if self.reset.is_some() || shared.session().stream(self.id).buffered_send() == 0 {
            return Poll::Ready(Ok(()));
        }
        shared.register_flush(self.id, cx.waker());
        wake_or_defer(&mut shared, self.defer_wakes, &mut self.deferred);
        Poll::Pending
    }

    /// Finishes this side of the stream (a FIN follows the written data); it
    /// never waits.
    pub fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish())
    }

    /// Finishes this side of the stream (a FIN follows the written data).
    pub fn finish(&mut self) -> io::Result<()> {
        if self.write_done {
            return Ok(());
        }
        if let Some(code) = self.reset {
            return Err(with_reason(WriteError::Reset(code), &self.reason));
        }
        let mut shared = Shared::lock(&self.shared);
        if let Some(code) = Self::announced_reset(&shared, self.id, &mut self.reset, &mut self.reason) {
            return Err(with_reason(WriteError::Reset(code), &self.reason));
        }
        let id = self.id;
        let defer = self.defer_wakes;
        let result = shared.change_checking(|session| session.stream(id).finish(), |_| !defer);
        match result {
            Ok(()) | Err(FinishError::Finished) => {
                self.write_done = true;
                if defer {
                    wake_or_defer(&mut shared, true, &mut self.deferred);
                }
                Ok(())
            }
            Err(FinishError::SessionClosed) => Err(shared.closed_error()),
            Err(FinishError::Reset(code)) => {
                Self::note_reset(&shared, self.id, code, &mut self.reset, &mut self.reason);
                Err(with_reason(WriteError::Reset(code), &self.reason))
            }
            Err(FinishError::UnknownStream) => Err(WriteError::UnknownStream.into()),
        }
    }

    /// Resets the stream with `code`: both directions stop, buffered data is dropped.
    pub fn reset(&mut self, code: ResetCode) {
        self.reset_with_reason(code, "");
    }

    /// [`reset`](Self::reset) with a reason the peer can read (native
    /// profile; at most 256 bytes, a longer one is cut at a character
    /// boundary; empty means none).
    pub fn reset_with_reason(&mut self, code: ResetCode, reason: &str) {
        let mut shared = Shared::lock(&self.shared);
        let id = self.id;
        let _ = shared.change_now(|session| session.stream(id).reset_with_reason(code, reason));
        self.reset = Some(code);
        shared.forget(id);
    }
}

impl Drop for StreamCore {
    fn drop(&mut self) {
        // A wake-up handed over and never acted on must not be lost.
        if let Some(waker) = self.deferred.take() {
            waker.wake();
        }
        let shared_ref = self.shared.clone();
        let mut shared = Shared::lock(&shared_ref);
        self.release(&mut shared);
        shared.release_handle();
    }
}

impl StreamCore {
    /// What dropping the stream does to it, before the handle count goes down.
    fn release(&mut self, shared: &mut Shared) {
        if self.reset.is_some() || shared.closed().is_some() || shared.announced_reset(self.id).is_some() {
            // Over already: nothing to finish or drain.
            shared.forget(self.id);
            return;
        }
        // Graceful: what was written still goes out, then the FIN.
        let id = self.id;
        if !self.write_done {
            let _ = shared.change_now(|session| session.stream(id).finish());
        }
        if self.read_done {
            shared.forget(id);
        } else {
            shared.abandon(id);
        }
        // Forgetting or abandoning may have given the driver work (a reset,
        // data to drain).
        shared.wake_driver();
    }
}

/// Declares an async adapter's `Stream`: a [`StreamCore`] with its id and its
/// resets, made from the core by the shared layer. The adapter adds its
/// ecosystem's I/O traits. For the adapters.
#[doc(hidden)]
#[macro_export]
macro_rules! declare_stream {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        pub struct Stream {
            core: $crate::StreamCore,
        }

        impl ::std::convert::From<$crate::StreamCore> for Stream {
            fn from(core: $crate::StreamCore) -> Stream {
                Stream { core }
            }
        }

        impl Stream {
            /// The stream id.
            pub fn id(&self) -> $crate::hawser_core::StreamId {
                self.core.id()
            }

            /// Resets the stream with `code`, abandoning buffered data in both
            /// directions.
            pub fn reset(mut self, code: $crate::hawser_core::ResetCode) {
                self.core.reset(code);
            }

            /// [`reset`](Self::reset) with a reason the peer reads in its error
            /// ([`reset_reason`](crate::reset_reason)); native profile only, at
            /// most 256 bytes (a longer one is cut at a character boundary).
            pub fn reset_with_reason(mut self, code: $crate::hawser_core::ResetCode, reason: &str) {
                self.core.reset_with_reason(code, reason);
            }
        }
    };
}
