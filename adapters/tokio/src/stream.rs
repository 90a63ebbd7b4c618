//! A stream as tokio `AsyncRead + AsyncWrite`.

use std::io;
use std::task::{Context, Poll};

use hawser_driver::StreamCore;
use tokio::io::ReadBuf;

hawser_driver::declare_stream! {
    /// One multiplexed stream. `poll_shutdown` finishes it (half-close); reading
    /// returns end-of-stream once the peer finished. Split it with `tokio::io::split`.
}

/// tokio's I/O traits for a type whose I/O is a `StreamCore`'s: [`Stream`],
/// and the pool's `PoolStream`.
macro_rules! tokio_io {
    ($ty:ty) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                $crate::stream::read_into(hawser_driver::HasStreamCore::stream_core(self.get_mut()), cx, buf)
            }
        }

        hawser_driver::impl_stream_write!($ty, tokio::io::AsyncWrite, poll_shutdown);
    };
}
pub(crate) use tokio_io;

tokio_io!(Stream);

/// Reads the next chunk straight into the caller's buffer: zeroing its
/// unfilled part first would cost as much as the copy, on every poll, however
/// little arrived (a reader with a 1 MiB buffer and a trickling peer).
pub(crate) fn read_into(core: &mut StreamCore, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    if buf.remaining() == 0 {
        return Poll::Ready(Ok(()));
    }
    core.poll_read_chunk(cx, buf.remaining()).map_ok(|chunk| {
        if let Some(chunk) = chunk {
            buf.put_slice(&chunk);
        }
    })
}
