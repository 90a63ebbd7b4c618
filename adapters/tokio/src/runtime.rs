//! tokio as the shared layer sees it: its spawn, its timer, its TCP, and its
//! I/O objects as links.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use bytes::BytesMut;
use hawser_driver::{Link, LinkOf, Runtime, TcpRuntime, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::stream::Stream;

/// The tokio runtime, as hawser's shared layer uses it: sessions' drivers are
/// spawned with `tokio::spawn`, so they must be made within a runtime.
#[derive(Clone, Copy, Debug)]
pub struct Tokio;

impl Runtime for Tokio {
    type Stream = Stream;
    type Timer = TokioTimer;

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(task);
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> LinkOf<T> for Tokio {
    type Link = TokioLink<T>;

    fn link(io: T) -> TokioLink<T> {
        TokioLink(io)
    }
}

impl TcpRuntime for Tokio {
    type TcpStream = TcpStream;
    type TcpListener = TcpListener;

    async fn connect_tcp(addr: String) -> io::Result<TcpStream> {
        tuned(TcpStream::connect(addr).await?)
    }

    async fn bind_tcp(addr: String) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept_tcp(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = listener.accept().await?;
        Ok((tuned(tcp)?, peer))
    }
}

fn tuned(tcp: TcpStream) -> io::Result<TcpStream> {
    hawser_driver::tune_tcp(&tcp)?;
    Ok(tcp)
}

/// A tokio I/O object as the session's driver sees it.
pub struct TokioLink<T>(T);

impl<T: AsyncRead + AsyncWrite + Unpin> Link for TokioLink<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read_buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read_buf.filled().len())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut, _want: usize) -> Poll<io::Result<usize>> {
        // tokio reads into uninitialised memory safely: no zeroing, so read all
        // the room there is.
        tokio_util::io::poll_read_buf(Pin::new(&mut self.0), cx, buf)
    }

    hawser_driver::link_write_methods!(poll_shutdown);
}

/// The session timer, on tokio's.
#[derive(Default)]
pub struct TokioTimer {
    sleep: Option<(StdInstant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Timer for TokioTimer {
    fn poll_until(&mut self, cx: &mut Context<'_>, deadline: StdInstant) -> Poll<()> {
        let sleep = match &mut self.sleep {
            Some((at, sleep)) => {
                if *at != deadline {
                    // Deadlines move with traffic: re-arm the one timer rather
                    // than allocating a new one.
                    sleep.as_mut().reset(tokio::time::Instant::from_std(deadline));
                    *at = deadline;
                }
                sleep
            }
            None => {
                let sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)));
                &mut self.sleep.insert((deadline, sleep)).1
            }
        };
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dialled_and_accepted_sockets_have_nodelay() {
        let listener = Tokio::bind_tcp("127.0.0.1:0".into()).await.expect("bind on loopback");
        let addr = Tokio::local_addr(&listener).expect("bound");
        let dialled = Tokio::connect_tcp(addr.to_string()).await.expect("dial");
        let (accepted, _) = Tokio::accept_tcp(&listener).await.expect("accept");
        assert!(dialled.nodelay().expect("readable option"));
        assert!(accepted.nodelay().expect("readable option"));
        let plain = TcpStream::connect(addr).await.expect("dial");
        assert!(!plain.nodelay().expect("readable option"), "the default is Nagle on");
    }
}
