//! A libp2p substream: one hawser stream in futures-io's traits, with
//! libp2p's drop semantics.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use hawser_core::{ResetCode, StreamId};
use hawser_driver::StreamCore;

/// One multiplexed stream of a [`Muxer`](crate::Muxer).
///
/// `poll_close` finishes the writing side (the peer reads end-of-stream after
/// the data) and waits until the data has been handed to the link; reading
/// goes on until the peer finishes too.
///
/// Dropping a substream whose two directions are both still open **resets**
/// it, as libp2p expects: protocol handlers drop a substream to abort it.
/// A substream dropped after it was closed, or after it read the peer's
/// end-of-stream, ends gracefully: what was written still goes out, and
/// what the peer still sends is discarded.
pub struct Substream {
    core: StreamCore,
    /// `poll_close` finished the writing side.
    write_closed: bool,
    /// A read returned the peer's end-of-stream.
    read_ended: bool,
}

impl Substream {
    pub(crate) fn new(core: StreamCore) -> Self {
        Substream {
            core,
            write_closed: false,
            read_ended: false,
        }
    }

    /// The stream id (odd for streams the dialling side opened).
    pub fn id(&self) -> StreamId {
        self.core.id()
    }
}

impl AsyncRead for Substream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = this.core.poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(0))) && !buf.is_empty() {
            this.read_ended = true;
        }
        read
    }
}

impl AsyncWrite for Substream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().core.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().core.poll_flush(cx)
    }

    /// Finishes the writing side, then waits until the written data and the
    /// FIN are handed to the link: a closed substream's data reaches the
    /// peer even if the connection is closed right after.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.core.finish()?;
            this.write_closed = true;
        }
        this.core.poll_flush(cx)
    }
}

impl Drop for Substream {
    fn drop(&mut self) {
        if !self.write_closed && !self.read_ended {
            self.core.reset(ResetCode::CANCEL);
        }
    }
}

impl std::fmt::Debug for Substream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Substream")
            .field("id", &self.core.id())
            .finish_non_exhaustive()
    }
}
