//! A stream as tokio `AsyncRead + AsyncWrite`.

use std::io;
use std::task::{Context, Poll};

use hawser_driver::StreamCore;
use tokio::io::ReadBuf;

hawser_driver::declare_stream! {
    /// One multiplexed stream. `poll_shutdown` finishes it (half-close); reading
    /// returns end-of-stream once the peer finished. Split it into owned halves
    /// with [`into_split`](Stream::into_split).
    ///
    /// ```
    /// use hawser_tokio::{Config, Listener, Session};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
    /// let client = Session::connect(listener.local_addr()?, Config::default()).await?;
    /// let (server, _peer) = listener.accept().await?;
    /// tokio::spawn(async move {
    ///     // An echo: one task reads, the copy writes.
    ///     while let Some(stream) = server.accept().await {
    ///         let (mut from, mut to) = stream.into_split();
    ///         tokio::spawn(async move { tokio::io::copy(&mut from, &mut to).await });
    ///     }
    /// });
    /// let (mut reader, mut writer) = client.open_stream().await?.into_split();
    /// let sender = tokio::spawn(async move {
    ///     writer.write_all(&vec![7u8; 1 << 20]).await?;
    ///     writer.shutdown().await
    /// });
    /// let mut echoed = Vec::new();
    /// reader.read_to_end(&mut echoed).await?;
    /// sender.await??;
    /// assert_eq!(echoed.len(), 1 << 20);
    /// # Ok(()) }
    /// ```
}

/// tokio's I/O traits for a type whose I/O is a `StreamCore`'s: [`Stream`],
/// and the pool's `PoolStream`.
macro_rules! tokio_io {
    ($ty:ty) => {
        $crate::stream::tokio_read!($ty);
        hawser_driver::impl_stream_write!($ty, tokio::io::AsyncWrite, poll_shutdown);
    };
}
pub(crate) use tokio_io;

/// tokio's `AsyncRead` for a type whose I/O is a `StreamCore`'s.
macro_rules! tokio_read {
    ($ty:ty) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                hawser_driver::HasStreamCore::with_core(self.get_mut(), |core| $crate::stream::read_into(core, cx, buf))
            }
        }
    };
}
pub(crate) use tokio_read;

tokio_io!(Stream);
tokio_read!(OwnedReadHalf);
hawser_driver::impl_stream_write!(OwnedWriteHalf, tokio::io::AsyncWrite, poll_shutdown);

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
