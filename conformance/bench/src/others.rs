//! The workloads outside tokio: two hawser-core sessions in memory next to a
//! plain memcpy loop, hawser-blocking next to raw `std::net`, and hawser-async-std.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_core::{Config, Event, Instant as CoreInstant, Role, Session};

use crate::workloads::{latency_figures, Figure};
use crate::Sizes;

/// Moves `bytes` from a client session to a server session in memory, 64 KiB
/// writes, reading as it goes; no I/O, no copies but the ones the protocol
/// makes. The seconds it took, or `None` if a session closed. Not inlined, so
/// that an instruction count can be taken of it alone
/// (`conformance/bench/callgrind`).
#[inline(never)]
fn transfer_through_two_sessions(bytes: usize) -> Option<f64> {
    let now = CoreInstant::ZERO;
    let config = Config {
        keepalive_interval: None,
        ..Config::default()
    };
    let mut client = Session::new(Role::Client, config.clone(), now).expect("valid config");
    let mut server = Session::new(Role::Server, config, now).expect("valid config");
    let chunk = Bytes::from(vec![0x5au8; 64 * 1024]);
    let id = client.open(now).expect("a fresh session can open");
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut inbound = None;
    let start = Instant::now();
    while received < bytes {
        while sent < bytes {
            match client.stream(id).write(chunk.clone()) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Some(transmit) = client.poll_transmit(now) {
            let (header, payload) = transmit.into_parts();
            server.handle_input(now, Bytes::copy_from_slice(&header));
            if !payload.is_empty() {
                server.handle_input(now, payload);
            }
        }
        while server.poll_event().is_some() {}
        if inbound.is_none() {
            inbound = server.accept();
        }
        if let Some(inbound) = inbound {
            while let Ok(Some(piece)) = server.stream(inbound).read(usize::MAX) {
                received += piece.len();
            }
        }
        while let Some(transmit) = server.poll_transmit(now) {
            let (header, payload) = transmit.into_parts();
            client.handle_input(now, Bytes::copy_from_slice(&header));
            if !payload.is_empty() {
                client.handle_input(now, payload);
            }
        }
        while let Some(event) = client.poll_event() {
            if let Event::Closed(_) = event {
                return None;
            }
        }
    }
    Some(start.elapsed().as_secs_f64())
}

/// The core's in-memory transfer next to a plain copy of as many bytes.
pub fn core_transfer(sizes: &Sizes) -> Vec<Figure> {
    let Some(core_secs) = transfer_through_two_sessions(sizes.core) else {
        return Vec::new();
    };

    // The same amount copied 64 KiB at a time, as the yardstick.
    let source = vec![0x5au8; 64 * 1024];
    let mut target = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let mut copied = 0;
    while copied < sizes.core {
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&mut target);
        copied += source.len();
    }
    let memcpy_secs = start.elapsed().as_secs_f64();
    vec![
        Figure {
            metric: "throughput",
            value: sizes.core as f64 / core_secs / 1e9,
            unit: "GB/s",
        },
        Figure {
            metric: "memcpy",
            value: sizes.core as f64 / memcpy_secs / 1e9,
            unit: "GB/s",
        },
    ]
}

fn loopback() -> io::Result<(TcpStream, TcpStream)> {
    hawser_conformance::interop::link::tcp_pair()
}

/// A byte stream a blocking workload can use: raw TCP or a hawser-blocking stream.
trait BlockingIo: Read + Write + Send {
    fn finish(&mut self) -> io::Result<()>;
}

impl BlockingIo for TcpStream {
    fn finish(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl BlockingIo for hawser_blocking::Stream {
    fn finish(&mut self) -> io::Result<()> {
        hawser_blocking::Stream::finish(self)
    }
}

fn blocking_bulk(mut client: impl BlockingIo, mut server: impl BlockingIo + 'static, len: usize) -> io::Result<f64> {
    let sink = thread::spawn(move || -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        while server.read(&mut buf)? > 0 {}
        server.write_all(b"k")?;
        server.finish()
    });
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        client.write_all(&chunk[..n])?;
        left -= n;
    }
    client.finish()?;
    let mut answer = [0u8; 1];
    client.read_exact(&mut answer)?;
    let secs = start.elapsed().as_secs_f64();
    sink.join().map_err(|_| io::Error::other("sink thread panicked"))??;
    Ok(len as f64 / secs / 1e6)
}

fn blocking_rr(
    mut client: impl BlockingIo,
    mut server: impl BlockingIo + 'static,
    trips: usize,
) -> io::Result<Vec<Duration>> {
    let echo = thread::spawn(move || -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            match server.read_exact(&mut buf) {
                Ok(()) => server.write_all(&buf)?,
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    });
    let request = [0x42u8; 64];
    let mut reply = [0u8; 64];
    for _ in 0..100 {
        client.write_all(&request)?;
        client.read_exact(&mut reply)?;
    }
    let mut samples = Vec::with_capacity(trips);
    for _ in 0..trips {
        let start = Instant::now();
        client.write_all(&request)?;
        client.read_exact(&mut reply)?;
        samples.push(start.elapsed());
    }
    client.finish()?;
    let _ = echo.join();
    Ok(samples)
}

/// A hawser-blocking client stream and the server's end of it.
fn hawser_blocking_pair() -> io::Result<(
    hawser_blocking::Session,
    hawser_blocking::Session,
    hawser_blocking::Stream,
    hawser_blocking::Stream,
)> {
    let (a, b) = loopback()?;
    let client = hawser_blocking::Session::client(a, hawser_blocking::Config::default())?;
    let server = hawser_blocking::Session::server(b, hawser_blocking::Config::default())?;
    let mut stream = client.open_stream()?;
    stream.write_all(b"!")?;
    let mut inbound = server.accept().ok_or_else(|| io::Error::other("no inbound stream"))?;
    let mut first = [0u8; 1];
    inbound.read_exact(&mut first)?;
    Ok((client, server, stream, inbound))
}

pub fn blocking_bulk_one(hawser: bool, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let mbps = if hawser {
        let (client, server, stream, inbound) = hawser_blocking_pair()?;
        let mbps = blocking_bulk(stream, inbound, sizes.bulk_one)?;
        client.close(hawser_blocking::GoAwayCode::NORMAL);
        drop(server);
        mbps
    } else {
        let (a, b) = loopback()?;
        blocking_bulk(a, b, sizes.bulk_one)?
    };
    Ok(vec![Figure {
        metric: "throughput",
        value: mbps,
        unit: "MB/s",
    }])
}

pub fn blocking_request_response(hawser: bool, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let samples = if hawser {
        let (client, server, stream, inbound) = hawser_blocking_pair()?;
        let samples = blocking_rr(stream, inbound, sizes.round_trips)?;
        client.close(hawser_blocking::GoAwayCode::NORMAL);
        drop(server);
        samples
    } else {
        let (a, b) = loopback()?;
        blocking_rr(a, b, sizes.round_trips)?
    };
    Ok(latency_figures(samples))
}

/// hawser-async-std on async-std: bulk-1 or rr.
pub fn async_std_workload(rr: bool, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    use async_std::io::{ReadExt, WriteExt};
    let sizes = sizes.clone();
    async_std::task::block_on(async move {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (dialled, accepted) = futures_join(async_std::net::TcpStream::connect(addr), listener.accept()).await;
        let (dialled, (accepted, _)) = (dialled?, accepted?);
        dialled.set_nodelay(true)?;
        accepted.set_nodelay(true)?;
        let client = hawser_async_std::Session::client(dialled, hawser_async_std::Config::default())?;
        let server = hawser_async_std::Session::server(accepted, hawser_async_std::Config::default())?;
        let mut stream = client.open_stream().await?;
        stream.write_all(b"!").await?;
        let mut inbound = server
            .accept()
            .await
            .ok_or_else(|| io::Error::other("no inbound stream"))?;
        let mut first = [0u8; 1];
        inbound.read_exact(&mut first).await?;
        let figures = if rr {
            let echo = async_std::task::spawn(async move {
                let mut buf = [0u8; 64];
                while inbound.read_exact(&mut buf).await.is_ok() {
                    if inbound.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
            let request = [0x42u8; 64];
            let mut reply = [0u8; 64];
            for _ in 0..100 {
                stream.write_all(&request).await?;
                stream.read_exact(&mut reply).await?;
            }
            let mut samples = Vec::with_capacity(sizes.round_trips);
            for _ in 0..sizes.round_trips {
                let start = Instant::now();
                stream.write_all(&request).await?;
                stream.read_exact(&mut reply).await?;
                samples.push(start.elapsed());
            }
            client.close(hawser_async_std::GoAwayCode::NORMAL);
            echo.cancel().await;
            latency_figures(samples)
        } else {
            let sink = async_std::task::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0usize;
                while let Ok(n) = inbound.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            });
            let chunk = vec![0x5au8; 64 * 1024];
            let start = Instant::now();
            let mut left = sizes.bulk_one;
            while left > 0 {
                let n = left.min(chunk.len());
                stream.write_all(&chunk[..n]).await?;
                left -= n;
            }
            std::future::poll_fn(|cx| futures_io::AsyncWrite::poll_close(std::pin::Pin::new(&mut stream), cx)).await?;
            let total = sink.await;
            let secs = start.elapsed().as_secs_f64();
            client.close(hawser_async_std::GoAwayCode::NORMAL);
            if total != sizes.bulk_one {
                return Err(io::Error::other(format!("sank {total} of {} bytes", sizes.bulk_one)));
            }
            vec![Figure {
                metric: "throughput",
                value: sizes.bulk_one as f64 / secs / 1e6,
                unit: "MB/s",
            }]
        };
        Ok(figures)
    })
}

/// Polls two futures together and returns both outputs.
async fn futures_join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let mut out_a = None;
    let mut out_b = None;
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (out_a.expect("ready"), out_b.expect("ready"))
}
