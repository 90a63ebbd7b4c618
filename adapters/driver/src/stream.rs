//! Poll-style stream operations, shared by the async adapters (and, through a
//! thread-parking waker, by the blocking one).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hawser_core::{FinishError, ReadError, ResetCode, StreamId, WriteError};

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
        let mut shared = Shared::lock(&self.shared);
        let id = self.id;
        if let Some(err) = shared.reset_error(id, ReadError::Reset) {
            return Poll::Ready(Err(err));
        }
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
            Err(ReadError::Reset(code)) => {
                shared.note_reset(id, code);
                Poll::Ready(Err(reset_error(&shared, id, code, ReadError::Reset)))
            }
            Err(err) => Poll::Ready(Err(err.into())),
        }
    }

    /// Queues `data` (a prefix of it when the buffers are nearly full).
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut shared = Shared::lock(&self.shared);
        let id = self.id;
        if let Some(err) = shared.reset_error(id, WriteError::Reset) {
            return Poll::Ready(Err(err));
        }
        let room = shared.session().stream(id).writable_bytes();
        let take = data.len().min(room.max(1));
        let copy = shared.copy_in(&data[..take]);
        let defer = self.defer_wakes;
        let result = shared.change_waking(|session| session.stream(id).write(copy), |r| r.is_ok() && !defer);
        if defer && result.is_ok() {
            wake_or_defer(&mut shared, true, &mut self.deferred);
        }
        finish_write(&mut shared, id, cx, result)
    }

    /// Queues `data` without copying.
    pub fn poll_write_bytes(&mut self, cx: &mut Context<'_>, data: &Bytes) -> Poll<io::Result<usize>> {
        let mut shared = Shared::lock(&self.shared);
        let id = self.id;
        if let Some(err) = shared.reset_error(id, WriteError::Reset) {
            return Poll::Ready(Err(err));
        }
        let defer = self.defer_wakes;
        let result = shared.change_waking(
            |session| session.stream(id).write(data.clone()),
            |r| r.is_ok() && !defer,
        );
        if defer && result.is_ok() {
            wake_or_defer(&mut shared, true, &mut self.deferred);
        }
        finish_write(&mut shared, id, cx, result)
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
        if shared.is_reset(self.id) || shared.session().stream(self.id).buffered_send() == 0 {
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
        let mut shared = Shared::lock(&self.shared);
        let id = self.id;
        if let Some(err) = shared.reset_error(id, WriteError::Reset) {
            return Err(err);
        }
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
                shared.note_reset(id, code);
                Err(reset_error(&shared, id, code, WriteError::Reset))
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
        shared.note_reset(id, code);
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
        if shared.is_reset(self.id) || shared.closed().is_some() {
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

/// A [`StreamCore`] shared by a stream's two owned halves: each operation
/// holds the lock for one poll, never while waiting, so neither half holds up
/// the other. The stream is released (as a dropped stream is) when the last
/// clone goes. For the adapters' `split`/`into_split`.
#[doc(hidden)]
#[derive(Clone)]
pub struct SplitCore(Arc<Mutex<StreamCore>>);

impl SplitCore {
    /// Shares `core` between the halves.
    pub fn new(core: StreamCore) -> SplitCore {
        SplitCore(Arc::new(Mutex::new(core)))
    }

    /// The core, for one operation.
    pub fn lock(&self) -> MutexGuard<'_, StreamCore> {
        // A panic elsewhere cannot leave a stream handle half-updated.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The error for an operation that met stream `id`'s reset `code`: the
/// recorded one (with its reason), or `reported(code)` if the handle has no
/// record (it was released).
fn reset_error<E: Into<io::Error>>(
    shared: &Shared,
    id: StreamId,
    code: ResetCode,
    reported: impl Fn(ResetCode) -> E,
) -> io::Error {
    shared
        .reset_error(id, &reported)
        .unwrap_or_else(|| reported(code).into())
}

/// The outcome of a stream write: a blocked write waits for room, a reset is
/// recorded.
fn finish_write(
    shared: &mut Shared,
    id: StreamId,
    cx: &mut Context<'_>,
    result: Result<usize, WriteError>,
) -> Poll<io::Result<usize>> {
    match result {
        Ok(n) => Poll::Ready(Ok(n)),
        Err(WriteError::Blocked) => {
            shared.register_write(id, cx.waker());
            Poll::Pending
        }
        Err(WriteError::SessionClosed) => Poll::Ready(Err(shared.closed_error())),
        Err(WriteError::Reset(code)) => {
            shared.note_reset(id, code);
            Poll::Ready(Err(reset_error(shared, id, code, WriteError::Reset)))
        }
        Err(err) => Poll::Ready(Err(err.into())),
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

        impl $crate::HasStreamCore for Stream {
            fn with_core<T>(&mut self, operation: impl FnOnce(&mut $crate::StreamCore) -> T) -> T {
                operation(&mut self.core)
            }
        }

        /// The reading half of a [`Stream`], from [`Stream::into_split`]; it can
        /// move to another task than the writing half.
        pub struct OwnedReadHalf {
            core: $crate::SplitCore,
        }

        /// The writing half of a [`Stream`], from [`Stream::into_split`].
        /// Dropping it finishes the stream, as shutting it down does.
        pub struct OwnedWriteHalf {
            core: $crate::SplitCore,
        }

        impl $crate::HasStreamCore for OwnedReadHalf {
            fn with_core<T>(&mut self, operation: impl FnOnce(&mut $crate::StreamCore) -> T) -> T {
                operation(&mut self.core.lock())
            }
        }

        impl $crate::HasStreamCore for OwnedWriteHalf {
            fn with_core<T>(&mut self, operation: impl FnOnce(&mut $crate::StreamCore) -> T) -> T {
                operation(&mut self.core.lock())
            }
        }

        impl OwnedReadHalf {
            /// The stream id.
            pub fn id(&self) -> $crate::hawser_core::StreamId {
                self.core.lock().id()
            }

            /// Reads the next chunk that arrived, at most `max` bytes, without
            /// copying it: the bytes are the session's own buffer, handed
            /// over. `Ok(None)` once the peer finished. For forwarding code
            /// that passes chunks on whole ([`write_bytes`](OwnedWriteHalf::write_bytes)
            /// on another stream, a socket's write); reading into a buffer
            /// of one's own is the I/O trait's `read`.
            pub async fn read_chunk(&mut self, max: usize) -> ::std::io::Result<Option<$crate::bytes::Bytes>> {
                $crate::read_chunk(self, max).await
            }
        }

        impl OwnedWriteHalf {
            /// The stream id.
            pub fn id(&self) -> $crate::hawser_core::StreamId {
                self.core.lock().id()
            }

            /// Writes all of `data`, handing its buffer to the session instead
            /// of copying it (the I/O trait's `write` copies what it is
            /// given); waits while the send buffers are full, as `write_all`
            /// does.
            pub async fn write_bytes(&mut self, data: $crate::bytes::Bytes) -> ::std::io::Result<()> {
                $crate::write_bytes(self, data).await
            }

            /// Resets the stream with `code`, abandoning buffered data in both
            /// directions; the read half's reads fail from now on.
            pub fn reset(self, code: $crate::hawser_core::ResetCode) {
                self.core.lock().reset(code);
            }

            /// [`reset`](Self::reset) with a reason, as for
            /// [`Stream::reset_with_reason`].
            pub fn reset_with_reason(self, code: $crate::hawser_core::ResetCode, reason: &str) {
                self.core.lock().reset_with_reason(code, reason);
            }
        }

        impl ::std::ops::Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                // An error means the stream already ended: nothing to finish.
                let _ = self.core.lock().finish();
            }
        }

        impl ::std::fmt::Debug for OwnedReadHalf {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("OwnedReadHalf").field("id", &self.id()).finish_non_exhaustive()
            }
        }

        impl ::std::fmt::Debug for OwnedWriteHalf {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("OwnedWriteHalf").field("id", &self.id()).finish_non_exhaustive()
            }
        }

        impl Stream {
            /// The stream id.
            pub fn id(&self) -> $crate::hawser_core::StreamId {
                self.core.id()
            }

            /// Reads the next chunk that arrived, at most `max` bytes, without
            /// copying it: the bytes are the session's own buffer, handed
            /// over. `Ok(None)` once the peer finished. For forwarding code
            /// that passes chunks on whole ([`write_bytes`](Stream::write_bytes)
            /// on another stream, a socket's write); reading into a buffer
            /// of one's own is the I/O trait's `read`.
            pub async fn read_chunk(&mut self, max: usize) -> ::std::io::Result<Option<$crate::bytes::Bytes>> {
                $crate::read_chunk(self, max).await
            }

            /// Writes all of `data`, handing its buffer to the session instead
            /// of copying it (the I/O trait's `write` copies what it is
            /// given); waits while the send buffers are full, as `write_all`
            /// does.
            pub async fn write_bytes(&mut self, data: $crate::bytes::Bytes) -> ::std::io::Result<()> {
                $crate::write_bytes(self, data).await
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

            /// Splits the stream into a reading and a writing half that can
            /// move to different tasks, without the lock `split` helpers wrap
            /// around the whole stream. Each half's operations lock the shared
            /// stream for one poll, never while waiting. Dropping the write half
            /// finishes the stream; once both halves are gone the stream is
            /// released as a dropped `Stream` is.
            pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
                let core = $crate::SplitCore::new(self.core);
                (OwnedReadHalf { core: core.clone() }, OwnedWriteHalf { core })
            }
        }
    };
}
