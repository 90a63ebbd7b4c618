//! A stream as `std::io::Read + Write`.

use std::io::{self, Read, Write};
use std::time::Duration;

use hawser_core::{ResetCode, StreamId};
use hawser_driver::{SplitCore, StreamCore};

use crate::direct::WriterWake;
use crate::wait::block_on_poll;

/// One multiplexed stream. Reads block until data, end-of-stream or an error;
/// writes block while the send buffers are full. Timeouts work like
/// `TcpStream`'s: an operation that waits longer fails with `TimedOut`.
pub struct Stream {
    core: StreamCore,
    writer: WriterWake,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// Runs one step of a write, flush or finish on `core` (one poll, never a
/// wait), then acts on the writer wake-up it handed over, before the caller
/// waits: the caller writes the frames itself if the writer is idle.
fn writing<T>(core: &mut StreamCore, writer: &WriterWake, step: impl FnOnce(&mut StreamCore) -> T) -> T {
    let outcome = step(core);
    if let Some(taken) = core.take_deferred_wake() {
        writer.act(taken);
    }
    outcome
}

/// [`writing`] for a half: the stream's lock is let go before the writer is
/// woken or written for, so that the read half is not held up meanwhile.
fn writing_half<T>(core: &SplitCore, writer: &WriterWake, step: impl FnOnce(&mut StreamCore) -> T) -> T {
    let (outcome, taken) = {
        let mut core = core.lock();
        let outcome = step(&mut core);
        (outcome, core.take_deferred_wake())
    };
    if let Some(taken) = taken {
        writer.act(taken);
    }
    outcome
}

impl Stream {
    pub(crate) fn new(mut core: StreamCore, writer: WriterWake) -> Self {
        core.defer_driver_wakes();
        Stream {
            core,
            writer,
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
    /// data written so far. It never blocks (the FIN is queued behind the data);
    /// to wait until everything has been handed to the link, `flush` (bounded by
    /// the write timeout).
    pub fn finish(&mut self) -> io::Result<()> {
        writing(&mut self.core, &self.writer, StreamCore::finish)
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

    /// Splits the stream into a reading and a writing half, so that one thread can
    /// read while another writes. Reading and writing from one thread in turn can
    /// deadlock an echo: the writer waits for window the peer grants only once it
    /// has written its reply, which waits for this side to read. Each half keeps
    /// the timeout this stream had for its direction.
    ///
    /// Dropping the write half finishes the stream (like [`WriteHalf::finish`]);
    /// once both halves are gone the stream is released as a dropped [`Stream`] is.
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # use std::net::{TcpListener, TcpStream};
    /// # use hawser_blocking::{Config, Session};
    /// # fn main() -> std::io::Result<()> {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = Session::client(TcpStream::connect(listener.local_addr()?)?, Config::default())?;
    /// # let server = Session::server(listener.accept()?.0, Config::default())?;
    /// # std::thread::spawn(move || {
    /// #     while let Some(stream) = server.accept() {
    /// #         let (mut reader, mut writer) = stream.split();
    /// #         std::thread::spawn(move || std::io::copy(&mut reader, &mut writer));
    /// #     }
    /// # });
    /// let (mut reader, mut writer) = client.open_stream()?.split();
    /// let sender = std::thread::spawn(move || -> std::io::Result<()> {
    ///     writer.write_all(&vec![1u8; 4 << 20])?;
    ///     writer.finish()
    /// });
    /// let mut echoed = Vec::new();
    /// reader.read_to_end(&mut echoed)?;
    /// sender.join().expect("the writer does not panic")?;
    /// assert_eq!(echoed.len(), 4 << 20);
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        let Stream {
            core,
            writer,
            read_timeout,
            write_timeout,
        } = self;
        let core = SplitCore::new(core);
        (
            ReadHalf {
                core: core.clone(),
                timeout: read_timeout,
            },
            WriteHalf {
                core,
                writer,
                timeout: write_timeout,
            },
        )
    }
}

/// The reading half of a [`Stream`], from [`Stream::split`].
pub struct ReadHalf {
    core: SplitCore,
    timeout: Option<Duration>,
}

impl ReadHalf {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.core.lock().id()
    }

    /// How long a read may wait; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
}

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The lock is held for one poll at a time, never while waiting, so the
        // write half is never held up by a read that waits for data.
        block_on_poll(self.timeout, |cx| self.core.lock().poll_read(cx, buf))
    }
}

/// The writing half of a [`Stream`], from [`Stream::split`]. Dropping it
/// finishes the stream.
pub struct WriteHalf {
    core: SplitCore,
    writer: WriterWake,
    timeout: Option<Duration>,
}

impl WriteHalf {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.core.lock().id()
    }

    /// How long a write or flush may wait; `None` waits forever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Finishes this side of the stream: the peer reads end-of-stream after the
    /// data written so far. The read half keeps reading the peer's data.
    pub fn finish(&mut self) -> io::Result<()> {
        writing_half(&self.core, &self.writer, StreamCore::finish)
    }

    /// Resets the stream with `code`, abandoning buffered data in both
    /// directions; the read half's reads fail from now on.
    pub fn reset(self, code: ResetCode) {
        self.core.lock().reset(code);
    }

    /// [`reset`](Self::reset) with a reason, as for
    /// [`Stream::reset_with_reason`].
    pub fn reset_with_reason(self, code: ResetCode, reason: &str) {
        self.core.lock().reset_with_reason(code, reason);
    }
}

impl Write for WriteHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        block_on_poll(self.timeout, |cx| {
            writing_half(&self.core, &self.writer, |core| core.poll_write(cx, buf))
        })
    }

    /// Waits until everything written has been handed to the link.
    fn flush(&mut self) -> io::Result<()> {
        block_on_poll(self.timeout, |cx| {
            writing_half(&self.core, &self.writer, |core| core.poll_flush(cx))
        })
    }
}

impl Drop for WriteHalf {
    fn drop(&mut self) {
        // An error means the stream already ended: nothing left to finish.
        let _ = writing_half(&self.core, &self.writer, StreamCore::finish);
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
        block_on_poll(timeout, |cx| {
            writing(&mut self.core, &self.writer, |core| core.poll_write(cx, buf))
        })
    }

    /// Waits until everything written has been handed to the link.
    fn flush(&mut self) -> io::Result<()> {
        let timeout = self.write_timeout;
        block_on_poll(timeout, |cx| {
            writing(&mut self.core, &self.writer, |core| core.poll_flush(cx))
        })
    }
}
