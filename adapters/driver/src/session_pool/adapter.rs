//! The pool types every async adapter exports, written once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::PoolRuntime;
use crate::control::ControlCore;
use crate::runtime::Runtime;
use crate::session::{Control, Session};

/// A dial of one session, boxed.
pub type SessionDial<R> = Pin<Box<dyn Future<Output = io::Result<Session<R>>> + Send>>;

/// What a pool of an async adapter runs on: the adapter's [`Runtime`] and a
/// dial of its sessions.
pub struct RuntimePool<R> {
    dial: Arc<dyn Fn() -> SessionDial<R> + Send + Sync>,
}

impl<R> Clone for RuntimePool<R> {
    fn clone(&self) -> Self {
        RuntimePool {
            dial: self.dial.clone(),
        }
    }
}

impl<R> RuntimePool<R> {
    /// A pool runtime that dials with `dial`.
    pub fn new(dial: Arc<dyn Fn() -> SessionDial<R> + Send + Sync>) -> Self {
        RuntimePool { dial }
    }
}

impl<R: Runtime> PoolRuntime for RuntimePool<R> {
    type Session = Control<R>;
    type Stream = R::Stream;

    async fn dial(&self) -> io::Result<(Control<R>, ControlCore)> {
        let session = (self.dial)().await?;
        let control = session.control();
        let core = (*control).clone();
        Ok((control, core))
    }

    fn open(session: &Control<R>) -> impl Future<Output = io::Result<R::Stream>> + Send {
        session.open_stream()
    }

    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        R::spawn(task);
    }

    async fn sleep_until(deadline: Instant) {
        crate::runtime::sleep_until::<R>(deadline).await;
    }
}

/// Declares an adapter's `Pool` and `PoolStream` over its runtime, its
/// `Session`, `Control` and `Stream`. The adapter adds the I/O traits of its
/// ecosystem to `PoolStream`. For the adapters.
#[doc(hidden)]
#[macro_export]
macro_rules! declare_pool {
    ($(#[$pool_doc:meta])* runtime: $runtime:ty, session: $session:ty, control: $control:ty, stream: $stream:ty $(,)?) => {
        $(#[$pool_doc])*
        #[derive(Clone)]
        pub struct Pool {
            handle: ::std::sync::Arc<$crate::session_pool::PoolHandle<$crate::session_pool::RuntimePool<$runtime>>>,
        }

        impl Pool {
            /// A pool that dials its sessions with `dial` (for example
            /// `move || Session::connect(addr, config.clone())`). Its upkeep
            /// starts at once, on the runtime, dialling up to `min_sessions` in
            /// the background; [`warmup`](Self::warmup) waits for them.
            /// Dropping the last clone of the pool lets its sessions go: each
            /// ends once the streams opened on it are done.
            pub fn new<F, D>(config: $crate::session_pool::PoolConfig, dial: F) -> ::std::io::Result<Pool>
            where
                F: Fn() -> D + Send + Sync + 'static,
                D: ::std::future::Future<Output = ::std::io::Result<$session>> + Send + 'static,
            {
                let runtime = $crate::session_pool::RuntimePool::<$runtime>::new(::std::sync::Arc::new(move || {
                    Box::pin(dial()) as $crate::session_pool::SessionDial<$runtime>
                }));
                Ok(Pool {
                    handle: ::std::sync::Arc::new($crate::session_pool::PoolHandle::new(config, runtime)?),
                })
            }

            /// Waits until the pool holds `min_sessions`; fails with the error
            /// of the first dial that fails on the way.
            pub async fn warmup(&self) -> ::std::io::Result<()> {
                self.handle.warmup().await
            }

            /// Opens a stream on the least-loaded healthy session with room,
            /// dialling another when all are full, or waiting (at most
            /// `open_timeout`, then `TimedOut`) beyond `max_sessions`. While no
            /// session is usable and the last dial failed, fails at once with
            /// that dial's error until its backoff has passed. Cancel-safe.
            pub async fn open_stream(&self) -> ::std::io::Result<PoolStream> {
                let (stream, slot) = self.handle.open_stream().await?;
                Ok(PoolStream { stream, _slot: slot })
            }

            /// The pool's counters: sessions dialled, failed, evicted, trimmed
            /// and live, streams opened and held, opens that waited and for how
            /// long.
            pub fn stats(&self) -> $crate::session_pool::PoolStats {
                self.handle.stats()
            }
        }

        impl ::std::fmt::Debug for Pool {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Pool").field("stats", &self.stats()).finish()
            }
        }

        /// A stream opened through a [`Pool`]: a [`Stream`] (it derefs to one)
        /// that holds its place on its session until dropped.
        pub struct PoolStream {
            stream: $stream,
            _slot: $crate::session_pool::StreamSlot<$control>,
        }

        impl PoolStream {
            /// Resets the stream with `code` (see [`Stream::reset`]).
            pub fn reset(self, code: hawser_core::ResetCode) {
                self.stream.reset(code);
            }

            /// Resets the stream with `code` and a reason (see
            /// [`Stream::reset_with_reason`]).
            pub fn reset_with_reason(self, code: hawser_core::ResetCode, reason: &str) {
                self.stream.reset_with_reason(code, reason);
            }
        }

        impl ::std::fmt::Debug for PoolStream {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("PoolStream").field("id", &self.stream.id()).finish_non_exhaustive()
            }
        }

        impl $crate::HasStreamCore for PoolStream {
            fn with_core<T>(&mut self, operation: impl FnOnce(&mut $crate::StreamCore) -> T) -> T {
                $crate::HasStreamCore::with_core(&mut self.stream, operation)
            }
        }

        impl ::std::ops::Deref for PoolStream {
            type Target = $stream;

            fn deref(&self) -> &$stream {
                &self.stream
            }
        }

        impl ::std::ops::DerefMut for PoolStream {
            fn deref_mut(&mut self) -> &mut $stream {
                &mut self.stream
            }
        }
    };
}
