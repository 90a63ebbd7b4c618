//! A stream as futures-io `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use hawser_core::{ResetCode, StreamId};
use hawser_driver::StreamCore;

/// One multiplexed stream. `poll_close` finishes it (half-close); reading returns
/// end-of-stream once the peer finished.
pub struct Stream {
    pub(crate) core: StreamCore,
}

impl Stream {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.core.id()
    }

    /// Resets the stream with `code`, abandoning buffered data in both directions.
    pub fn reset(mut self, code: ResetCode) {
        self.core.reset(code);
    }

    /// [`reset`](Self::reset) with a reason the peer reads in its error
    /// ([`reset_reason`](crate::reset_reason)); native profile only, at most
    /// 256 bytes (a longer one is cut at a character boundary).
    pub fn reset_with_reason(mut self, code: ResetCode, reason: &str) {
        self.core.reset_with_reason(code, reason);
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.get_mut().core.poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().core.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().core.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().core.poll_finish(cx)
    }
}
