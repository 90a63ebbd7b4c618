//! The two properties libp2p checks every stream muxer for, written here:
//! closing a substream delivers what was written before it (close implies
//! flush), and a substream that closed its writing side still reads the
//! peer's reply (read after half-close). Each runs over an in-memory pipe
//! that takes at most 100 bytes per write, for every pairing of hawser and
//! libp2p-yamux, with either side opening the substream.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::StreamExt;
use libp2p_core::muxing::{StreamMuxerBox, StreamMuxerExt, SubstreamBox};
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Longer than any of these exchanges takes, short enough to fail fast.
const LIMIT: Duration = Duration::from_secs(30);
/// Not a multiple of the pipe's piece size.
const MESSAGE_LEN: usize = 10_007;

/// A futures-io pipe end whose writes take at most 100 bytes each.
struct Pieces(Compat<tokio::io::DuplexStream>);

impl AsyncRead for Pieces {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pieces {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let piece = buf.len().min(100);
        Pin::new(&mut self.get_mut().0).poll_write(cx, &buf[..piece])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Hawser,
    Yamux,
}

async fn muxer(kind: Kind, io: Pieces, dialer: bool) -> StreamMuxerBox {
    const NAME: &str = "/yamux/1.0.0";
    match (kind, dialer) {
        (Kind::Hawser, true) => StreamMuxerBox::new(
            hawser_libp2p::Config::default()
                .upgrade_outbound(io, NAME)
                .await
                .expect("valid default"),
        ),
        (Kind::Hawser, false) => StreamMuxerBox::new(
            hawser_libp2p::Config::default()
                .upgrade_inbound(io, NAME)
                .await
                .expect("valid default"),
        ),
        (Kind::Yamux, true) => StreamMuxerBox::new(
            libp2p::yamux::Config::default()
                .upgrade_outbound(io, NAME)
                .await
                .expect("valid default"),
        ),
        (Kind::Yamux, false) => StreamMuxerBox::new(
            libp2p::yamux::Config::default()
                .upgrade_inbound(io, NAME)
                .await
                .expect("valid default"),
        ),
    }
}

/// A muxer run in a task of its own, as a swarm's connection runs it: its
/// `poll` is always polled, opens are asked for, inbound substreams handed on.
struct Running {
    opens: mpsc::UnboundedSender<oneshot::Sender<SubstreamBox>>,
    inbound: mpsc::UnboundedReceiver<SubstreamBox>,
    /// Asks the task to close the muxer and report how `poll_close` ended.
    close: Option<oneshot::Sender<oneshot::Sender<io::Result<()>>>>,
}

impl Running {
    fn start(mut muxer: StreamMuxerBox) -> Running {
        let (opens, mut open_requests) = mpsc::unbounded::<oneshot::Sender<SubstreamBox>>();
        let (inbound_tx, inbound) = mpsc::unbounded();
        let (close, mut close_request) = oneshot::channel::<oneshot::Sender<io::Result<()>>>();
        tokio::spawn(async move {
            let mut waiting = VecDeque::new();
            let mut closing = None;
            std::future::poll_fn(|cx| loop {
                if closing.is_none() {
                    if let Poll::Ready(Ok(report)) = Pin::new(&mut close_request).poll(cx) {
                        closing = Some(report);
                    }
                }
                if let Some(report) = closing.take() {
                    let Poll::Ready(closed) = muxer.poll_close_unpin(cx) else {
                        closing = Some(report);
                        return Poll::Pending;
                    };
                    let _ = report.send(closed.map_err(|err| io::Error::other(err.to_string())));
                    return Poll::Ready(());
                }
                let mut progress = false;
                match muxer.poll_unpin(cx) {
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Pending => {}
                }
                while let Poll::Ready(Some(reply)) = open_requests.poll_next_unpin(cx) {
                    waiting.push_back(reply);
                }
                if !waiting.is_empty() {
                    match muxer.poll_outbound_unpin(cx) {
                        Poll::Ready(Ok(substream)) => {
                            let reply: oneshot::Sender<_> = waiting.pop_front().expect("not empty");
                            let _ = reply.send(substream);
                            progress = true;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                }
                match muxer.poll_inbound_unpin(cx) {
                    Poll::Ready(Ok(substream)) => {
                        let _ = inbound_tx.unbounded_send(substream);
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
                if !progress {
                    return Poll::Pending;
                }
            })
            .await;
        });
        Running {
            opens,
            inbound,
            close: Some(close),
        }
    }

    /// Starts closing the muxer; the receiver reports how it ended.
    fn close(&mut self) -> oneshot::Receiver<io::Result<()>> {
        let (report, closed) = oneshot::channel();
        let _ = self.close.take().expect("closed once").send(report);
        closed
    }

    async fn open(&self) -> SubstreamBox {
        let (reply, opened) = oneshot::channel();
        self.opens.unbounded_send(reply).expect("muxer task running");
        opened.await.expect("the muxer opened a substream")
    }

    async fn accept(&mut self) -> SubstreamBox {
        self.inbound.next().await.expect("an inbound substream")
    }
}

/// A dialling and a listening muxer of the given kinds over one pipe.
async fn connected(dialer: Kind, listener: Kind) -> (Running, Running) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let dialling = muxer(dialer, Pieces(a.compat()), true).await;
    let listening = muxer(listener, Pieces(b.compat()), false).await;
    (Running::start(dialling), Running::start(listening))
}

fn message(seed: u8) -> Vec<u8> {
    (0..MESSAGE_LEN)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

const PAIRS: [(Kind, Kind); 3] = [
    (Kind::Hawser, Kind::Hawser),
    (Kind::Hawser, Kind::Yamux),
    (Kind::Yamux, Kind::Hawser),
];

/// The opener writes, closes, and drops its substream at once: the other
/// side still reads every byte, then the end.
async fn close_implies_flush(dialer: Kind, listener: Kind, dialer_opens: bool) {
    let (mut a, mut b) = connected(dialer, listener).await;
    let (opener, acceptor) = if dialer_opens {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let sent = message(7);
    let mut outbound = opener.open().await;
    outbound.write_all(&sent).await.expect("write");
    outbound.close().await.expect("close");
    drop(outbound);
    let mut inbound = acceptor.accept().await;
    let mut received = Vec::new();
    inbound.read_to_end(&mut received).await.expect("read to the end");
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the bytes arrived changed");
}

/// The opener writes and closes its writing side; the other side reads to
/// the end, then replies and closes; the opener reads the whole reply.
async fn read_after_half_close(dialer: Kind, listener: Kind, dialer_opens: bool) {
    let (mut a, mut b) = connected(dialer, listener).await;
    let (opener, acceptor) = if dialer_opens {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let (request, reply) = (message(1), message(2));
    let mut outbound = opener.open().await;
    outbound.write_all(&request).await.expect("write");
    outbound.close().await.expect("close");
    let mut inbound = acceptor.accept().await;
    let mut received = Vec::new();
    inbound.read_to_end(&mut received).await.expect("read to the end");
    assert!(received == request, "the request arrived changed");
    inbound.write_all(&reply).await.expect("reply");
    inbound.close().await.expect("close the reply");
    let mut answer = Vec::new();
    outbound.read_to_end(&mut answer).await.expect("read after closing");
    assert!(answer == reply, "the reply arrived changed");
}

/// Checks `property` for every pairing, with either side opening.
async fn in_every_pairing<F: Future<Output = ()>>(property: impl Fn(Kind, Kind, bool) -> F) {
    for (dialer, listener) in PAIRS {
        for dialer_opens in [true, false] {
            tokio::time::timeout(LIMIT, property(dialer, listener, dialer_opens))
                .await
                .unwrap_or_else(|_| panic!("{dialer:?} dialling {listener:?}, dialer opens: {dialer_opens}: stuck"));
        }
    }
}

#[tokio::test]
async fn close_implies_flush_in_every_pairing() {
    in_every_pairing(close_implies_flush).await;
}

#[tokio::test]
async fn read_after_half_close_in_every_pairing() {
    in_every_pairing(read_after_half_close).await;
}

/// libp2p handlers drop a substream to abort it: the peer sees a reset,
/// not a clean end. A hawser peer's read fails with the reset; yamux ends
/// the read of a reset stream as if finished, so there the proof is that
/// writing back fails (after a clean end it would succeed: a half-close).
#[tokio::test]
async fn dropping_an_open_substream_resets_it() {
    for peer in [Kind::Hawser, Kind::Yamux] {
        let (a, mut b) = connected(Kind::Hawser, peer).await;
        let mut outbound = a.open().await;
        outbound.write_all(b"partial").await.expect("write");
        outbound.flush().await.expect("flush");
        let mut inbound = b.accept().await;
        let mut start = [0u8; 7];
        inbound.read_exact(&mut start).await.expect("the first bytes");
        drop(outbound);
        let mut rest = Vec::new();
        let end = tokio::time::timeout(LIMIT, inbound.read_to_end(&mut rest))
            .await
            .expect("the end arrives");
        if peer == Kind::Hawser {
            let err = end.expect_err("a reset, not a clean end");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        }
        let written = tokio::time::timeout(LIMIT, inbound.write_all(b"too late"))
            .await
            .expect("the write ends");
        assert!(
            written.is_err(),
            "{peer:?}: the stream still takes writes, so it was not reset"
        );
    }
}

/// Closing a hawser muxer goes away and lets the open substream finish: a
/// hawser peer reads every byte written before, and `poll_close` completes
/// once the substream has ended both ways.
#[tokio::test]
async fn closing_the_muxer_drains_open_substreams() {
    let (mut a, mut b) = connected(Kind::Hawser, Kind::Hawser).await;
    let sent = message(3);
    let mut outbound = a.open().await;
    outbound.write_all(&sent).await.expect("write");
    let mut inbound = b.accept().await;
    let mut closed = a.close();
    // Still open: the close waits for the substream.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        closed.try_recv().expect("muxer task running").is_none(),
        "closed too soon"
    );
    outbound.close().await.expect("finish");
    let mut received = Vec::new();
    inbound.read_to_end(&mut received).await.expect("read to the end");
    assert!(received == sent, "the bytes arrived changed");
    inbound.close().await.expect("finish back");
    drop(inbound);
    drop(outbound);
    let closed = tokio::time::timeout(LIMIT, closed)
        .await
        .expect("the close completes")
        .expect("muxer task reported");
    closed.expect("an orderly close");
}

/// libp2p-yamux ends the connection as soon as it reads a go-away, so
/// there is nothing to drain; closing still completes.
#[tokio::test]
async fn closing_against_yamux_completes() {
    let (mut a, mut b) = connected(Kind::Hawser, Kind::Yamux).await;
    let mut outbound = a.open().await;
    outbound.write_all(b"hello").await.expect("write");
    let _inbound = b.accept().await;
    let closed = tokio::time::timeout(LIMIT, a.close())
        .await
        .expect("the close completes")
        .expect("muxer task reported");
    if let Err(err) = closed {
        eprintln!("closing against yamux ended with: {err}");
    }
}
