//! Links a blocking session can run over.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

/// A byte link that a reader thread and a writer thread can use at once.
pub trait BlockingLink: Read + Write + Send + Sized + 'static {
    /// A second handle on the same link, for the other thread.
    fn try_clone(&self) -> io::Result<Self>;
    /// Shuts both directions down, so that a thread blocked on the link returns.
    fn shutdown(&self) -> io::Result<()>;
}

impl BlockingLink for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }

    fn shutdown(&self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Both)
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
}
