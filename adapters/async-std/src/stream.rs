//! A stream as futures-io `AsyncRead + AsyncWrite`.

hawser_driver::declare_stream! {
    /// One multiplexed stream. `poll_close` finishes it (half-close); reading returns
    /// end-of-stream once the peer finished. Split it into owned halves with
    /// [`into_split`](Stream::into_split).
}

/// futures-io's I/O traits for a type whose I/O is a `StreamCore`'s:
/// [`Stream`], and each flavour's `PoolStream`.
macro_rules! futures_io {
    ($ty:ty) => {
        $crate::stream::futures_read!($ty);
        hawser_driver::impl_stream_write!($ty, futures_io::AsyncWrite, poll_close);
    };
}
#[cfg(any(feature = "async-std", feature = "smol"))]
pub(crate) use futures_io;

/// futures-io's `AsyncRead` for a type whose I/O is a `StreamCore`'s.
macro_rules! futures_read {
    ($ty:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                hawser_driver::HasStreamCore::with_core(self.get_mut(), |core| core.poll_read(cx, buf))
            }
        }
    };
}
pub(crate) use futures_read;

futures_io!(Stream);
futures_read!(OwnedReadHalf);
hawser_driver::impl_stream_write!(OwnedWriteHalf, futures_io::AsyncWrite, poll_close);
