//! TCP the way a multiplexer wants it: dial and listen helpers that set
//! `TCP_NODELAY`.
//!
//! hawser batches frames itself (many frames per vectored write), so Nagle's
//! algorithm only adds latency: with it, a small write that follows another
//! waits for the peer's delayed ACK, up to 40 ms on Linux. Use these helpers,
//! or call `set_nodelay(true)` on a socket you hand to [`Session::client`] or
//! [`Session::server`] yourself.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};

use hawser_core::Config;

use crate::Session;

impl Session {
    /// Dials `addr` over TCP with `TCP_NODELAY` set and starts a client session.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use hawser_blocking::{Config, Listener, Session};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", Config::default())?;
    /// let client = Session::connect(listener.local_addr()?, Config::default())?;
    /// let (server, _peer) = listener.accept()?;
    /// let _stream = client.open_stream()?;
    /// assert!(server.accept().is_some());
    /// # Ok(()) }
    /// ```
    pub fn connect(addr: impl ToSocketAddrs, config: Config) -> io::Result<Session> {
        hawser_driver::check_config(&config)?;
        Session::client(dial(&addr)?, config)
    }
}

/// Dials `addr` with `TCP_NODELAY` set.
pub(crate) fn dial(addr: &impl ToSocketAddrs) -> io::Result<TcpStream> {
    tuned(TcpStream::connect(addr)?)
}

/// A TCP listener whose accepted connections become server sessions, with
/// `TCP_NODELAY` set on each.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    config: Config,
}

impl Listener {
    /// Listens on `addr`; every accepted connection gets a session with `config`
    /// (checked here, so that `accept` never fails on it).
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Listener> {
        hawser_driver::check_config(&config)?;
        let listener = TcpListener::bind(addr)?;
        Ok(Listener { listener, config })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection as a server session (its two threads started), and the
    /// peer's address. An error is the listener's (for example too many open
    /// files) or a failure to start the threads: log it and keep accepting.
    pub fn accept(&self) -> io::Result<(Session, SocketAddr)> {
        let (tcp, peer) = self.listener.accept()?;
        Ok((Session::server(tuned(tcp)?, self.config.clone())?, peer))
    }
}

fn tuned(tcp: TcpStream) -> io::Result<TcpStream> {
    hawser_driver::tune_tcp(&tcp)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialled_and_accepted_sockets_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let dialled = TcpStream::connect(listener.local_addr().expect("bound")).expect("dial");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!dialled.nodelay().expect("readable option"), "the default is Nagle on");
        assert!(tuned(dialled).expect("set").nodelay().expect("readable option"));
        assert!(tuned(accepted).expect("set").nodelay().expect("readable option"));
    }
}
