//! A stream as futures-io `AsyncRead + AsyncWrite`.

hawser_driver::declare_stream! {
    /// One multiplexed stream. `poll_close` finishes it (half-close); reading returns
    /// end-of-stream once the peer finished.
}

/// futures-io's I/O traits for a type whose I/O is a `StreamCore`'s:
/// [`Stream`], and each flavour's `PoolStream`.
macro_rules! futures_io {
    ($ty:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                hawser_driver::HasStreamCore::stream_core(self.get_mut()).poll_read(cx, buf)
            }
        }

        hawser_driver::impl_stream_write!($ty, futures_io::AsyncWrite, poll_close);
    };
}
#[cfg(any(feature = "async-std", feature = "smol"))]
pub(crate) use futures_io;

futures_io!(Stream);
