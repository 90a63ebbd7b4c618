//! A stream as `std::io::Read + Write`.

use std::io::{self, Read, Write};
use std::time::Duration;

use hawser_core::{ResetCode, StreamId};
use hawser_driver::{SharedRef, StreamCore};

use crate::wait::block_on_poll;

/// One multiplexed stream. Reads block until data, end-of-stream or an error;
/// writes block while the send buffers are full. Timeouts work like
/// `TcpStream`'s: an operation that waits longer fails with `TimedOut`.
pub struct Stream {
    core: StreamCore,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Stream {
    pub(crate) fn new(shared: SharedRef, id: StreamId) -> Self {
        Stream {
            core: StreamCore::new(shared, id),
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.core.id()
    }

    /// How long a read may wait; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// How long a write or flush may wait; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Finishes this side of the stream: the peer reads end-of-stream after the
    /// data written so far.
    pub fn finish(&mut self) -> io::Result<()> {
        block_on_poll(None, |cx| self.core.poll_finish(cx))
    }

    /// Resets the stream with `code`, abandoning buffered data in both directions.
    pub fn reset(mut self, code: ResetCode) {
        self.core.reset(code);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = self.read_timeout;
        block_on_poll(timeout, |cx| self.core.poll_read(cx, buf))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let timeout = self.write_timeout;
        block_on_poll(timeout, |cx| self.core.poll_write(cx, buf))
    }

    /// Waits until everything written has been handed to the link.
    fn flush(&mut self) -> io::Result<()> {
        let timeout = self.write_timeout;
        block_on_poll(timeout, |cx| self.core.poll_flush(cx))
    }
}
