//! What the async adapters' I/O trait impls have in common, written once: the
//! write side of a stream type over its [`StreamCore`], and the write side of
//! a link over an ecosystem's I/O object. The two ecosystems' `AsyncWrite`
//! traits differ only in their paths and in the name of the method that
//! closes (`poll_shutdown` for tokio, `poll_close` for futures-io).

use crate::StreamCore;

/// A type whose I/O is a [`StreamCore`]'s: an adapter's `Stream`, the
/// `PoolStream` that holds one, and the owned halves that share one. For the
/// adapters' macros.
#[doc(hidden)]
pub trait HasStreamCore {
    /// Runs `operation` on the stream's core (for a half, under the lock
    /// the two halves share, held for this one operation).
    fn with_core<T>(&mut self, operation: impl FnOnce(&mut StreamCore) -> T) -> T;
}

/// Implements an async write trait (`$write`, whose close method is `$close`)
/// for `$ty`, a [`HasStreamCore`]: writes queue on the stream, a flush waits
/// until they have gone to the link, and closing finishes the stream (a
/// half-close). For the adapters.
#[doc(hidden)]
#[macro_export]
macro_rules! impl_stream_write {
    ($ty:ty, $write:path, $close:ident) => {
        impl $write for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                $crate::HasStreamCore::with_core(self.get_mut(), |core| core.poll_write(cx, buf))
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                $crate::HasStreamCore::with_core(self.get_mut(), |core| core.poll_flush(cx))
            }

            fn $close(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                $crate::HasStreamCore::with_core(self.get_mut(), |core| core.poll_finish(cx))
            }
        }
    };
}

/// The write half of a [`Link`](crate::Link) impl for a newtype over an
/// ecosystem's I/O object (field `0`), whose write trait must be in scope and
/// whose close method is `$close`. For the adapters.
#[doc(hidden)]
#[macro_export]
macro_rules! link_write_methods {
    ($close:ident) => {
        fn poll_write_vectored(
            &mut self,
            cx: &mut ::std::task::Context<'_>,
            bufs: &[::std::io::IoSlice<'_>],
        ) -> ::std::task::Poll<::std::io::Result<usize>> {
            ::std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
        }

        fn poll_flush(&mut self, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
            ::std::pin::Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(&mut self, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
            ::std::pin::Pin::new(&mut self.0).$close(cx)
        }
    };
}

/// The next chunk `stream` received, at most `max` bytes, without copying it;
/// `None` once the peer finished. Behind the adapters' `read_chunk`.
#[doc(hidden)]
pub async fn read_chunk(stream: &mut impl HasStreamCore, max: usize) -> std::io::Result<Option<bytes::Bytes>> {
    std::future::poll_fn(|cx| stream.with_core(|core| core.poll_read_chunk(cx, max.max(1)))).await
}

/// Queues all of `data` on `stream` without copying it, waiting for room in
/// the send buffers as it goes. Behind the adapters' `write_bytes`.
#[doc(hidden)]
pub async fn write_bytes(stream: &mut impl HasStreamCore, mut data: bytes::Bytes) -> std::io::Result<()> {
    while !data.is_empty() {
        let written = std::future::poll_fn(|cx| stream.with_core(|core| core.poll_write_bytes(cx, &data))).await?;
        bytes::Buf::advance(&mut data, written);
    }
    Ok(())
}
