//! The traits a runtime implements for the driver: a byte link, a timer, and
//! where a detached session's next link comes from. A leaf: the driver, the
//! redial loop and the registry all build on it.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use bytes::BytesMut;

/// A byte link in poll form; each adapter implements it for its runtime's I/O traits.
pub trait Link {
    /// Reads into `buf`; `Ok(0)` is end of file.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Reads at most `want` bytes (more if the link can read without zeroing
    /// first) and appends them to `buf`; `Ok(0)` is end of file. The provided
    /// version zeroes the room and calls [`Link::poll_read`]; a link that can
    /// read into uninitialised memory overrides it to skip the zeroing.
    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut, want: usize) -> Poll<io::Result<usize>> {
        let start = buf.len();
        buf.resize(start + want, 0);
        let result = self.poll_read(cx, &mut buf[start..]);
        let kept = match &result {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        buf.truncate(start + kept);
        result
    }
    /// Writes from `bufs` in order, returning how many bytes were taken.
    fn poll_write_vectored(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
    /// Flushes buffered output.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write side down.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A timer in poll form; each adapter implements it with its runtime's sleep.
pub trait Timer {
    /// Ready once `deadline` has passed.
    fn poll_until(&mut self, cx: &mut Context<'_>, deadline: StdInstant) -> Poll<()>;
}

/// Where a detached session's next link comes from. The driver polls
/// [`poll_link`](Self::poll_link) only while the session is detached, and
/// [`poll_early_link`](Self::poll_early_link) only while its link is suspect.
pub trait LinkSource<L> {
    /// The next link; `Ready(None)` when there will be none (the client gave up).
    fn poll_link(&mut self, cx: &mut Context<'_>) -> Poll<Option<L>>;

    /// Make-before-break: while the current link is suspect, a fresh link
    /// to take over from it. The provided version never has one (a server's
    /// links come from its clients).
    fn poll_early_link(&mut self, _cx: &mut Context<'_>) -> Poll<Option<L>> {
        Poll::Pending
    }

    /// The suspect link brought input again: drop the early links under way.
    fn cancel_early(&mut self) {}
}
