//! Links a blocking session can run over.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A byte link that a reader thread and a writer thread can use at once.
pub trait BlockingLink: Read + Write + Send + Sized + 'static {
    /// A second handle on the same link, for the other thread.
    fn try_clone(&self) -> io::Result<Self>;
    /// Shuts both directions down, so that a thread blocked on the link returns.
    fn shutdown(&self) -> io::Result<()>;
    /// Shuts the sending direction down (the peer reads end-of-file) while
    /// reads go on: a session that has ended still reads what the peer sends
    /// until it closes its side. The default shuts both directions.
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown()
    }
    /// How long a read may block (`None`: forever); a read that waits longer
    /// fails with `WouldBlock` or `TimedOut`. The acceptor bounds a client's
    /// opening with it.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// How long a write may block (`None`: forever); a write that waits longer
    /// fails with `WouldBlock` or `TimedOut`. The writer thread uses it to keep
    /// the session's timers (keepalive) running while the peer does not read.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl BlockingLink for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }

    fn shutdown(&self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Both)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Write)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl BlockingLink for std::os::unix::net::UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        std::os::unix::net::UnixStream::try_clone(self)
    }

    fn shutdown(&self) -> io::Result<()> {
        std::os::unix::net::UnixStream::shutdown(self, Shutdown::Both)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        std::os::unix::net::UnixStream::shutdown(self, Shutdown::Write)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, timeout)
    }
}
