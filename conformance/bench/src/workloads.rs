//! The workloads over the tokio implementations. Each returns its figures for one
//! repetition over a fresh connection.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use hawser_conformance::interop::peer::PeerStream;

use crate::mux::{self, Client, TokioImpl, ECHO, HOLD, SINK};
use crate::Sizes;

/// One figure of one repetition.
pub struct Figure {
    pub metric: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

fn figure(metric: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure { metric, value, unit }
}

/// Sends `len` bytes on a sink stream in 64 KiB writes and waits for the answer.
/// The read side is polled throughout: tokio-yamux applies window updates only
/// while its application reads.
pub async fn send_bulk(client: &Client, len: usize, chunk: &[u8]) -> io::Result<()> {
    let stream = client.open().await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writing = async {
        writer.write_all(&[SINK]).await?;
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            writer.write_all(&chunk[..n]).await?;
            left -= n;
        }
        writer.shutdown().await
    };
    let mut answer = [0u8; 1];
    let (written, read) = tokio::join!(writing, reader.read_exact(&mut answer));
    written?;
    read?;
    Ok(())
}

pub async fn bulk_one(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let client = mux::connect(which, 1).await?;
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    send_bulk(&client, sizes.bulk_one, &chunk).await?;
    let secs = start.elapsed().as_secs_f64();
    client.close();
    Ok(vec![figure("throughput", sizes.bulk_one as f64 / secs / 1e6, "MB/s")])
}

pub async fn bulk_hundred(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let client = Arc::new(mux::connect(which, 100).await?);
    let chunk = Arc::new(vec![0x5au8; 64 * 1024]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = client.clone();
        let chunk = chunk.clone();
        let len = sizes.bulk_hundred;
        tasks.push(tokio::spawn(async move { send_bulk(&client, len, &chunk).await }));
    }
    for task in tasks {
        task.await.map_err(io::Error::other)??;
    }
    let secs = start.elapsed().as_secs_f64();
    client.close();
    Ok(vec![figure(
        "throughput",
        (100 * sizes.bulk_hundred) as f64 / secs / 1e6,
        "MB/s",
    )])
}

/// An echo stream past its first `round_trips` round trips: open, windows settled.
async fn warm_echo_stream(client: &Client, round_trips: usize) -> io::Result<PeerStream> {
    let mut stream = client.open().await?;
    stream.write_all(&[ECHO]).await?;
    for _ in 0..round_trips {
        round_trip(&mut stream).await?;
    }
    Ok(stream)
}

/// One 64-byte request and its echo: how long it took.
async fn round_trip(stream: &mut PeerStream) -> io::Result<Duration> {
    let sent_at = Instant::now();
    stream.write_all(&[0x42u8; 64]).await?;
    stream.read_exact(&mut [0u8; 64]).await?;
    Ok(sent_at.elapsed())
}

pub async fn request_response(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let client = mux::connect(which, 1).await?;
    let mut stream = warm_echo_stream(&client, 100).await?;
    let mut samples = Vec::with_capacity(sizes.round_trips);
    for _ in 0..sizes.round_trips {
        samples.push(round_trip(&mut stream).await?);
    }
    stream.shutdown().await?;
    client.close();
    Ok(latency_figures(samples))
}

pub fn latency_figures(mut samples: Vec<Duration>) -> Vec<Figure> {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    vec![figure("p50", at(0.5), "us"), figure("p99", at(0.99), "us")]
}

pub async fn open_close(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    const WORKERS: usize = 32;
    let client = Arc::new(mux::connect(which, WORKERS).await?);
    let per_worker = sizes.opens / WORKERS;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let mut stream = client.open().await?;
                stream.write_all(&[ECHO, 7]).await?;
                let mut back = [0u8; 1];
                stream.read_exact(&mut back).await?;
                stream.shutdown().await?;
                let mut rest = [0u8; 8];
                while stream.read(&mut rest).await? > 0 {}
            }
            Ok::<(), io::Error>(())
        }));
    }
    for task in tasks {
        task.await.map_err(io::Error::other)??;
    }
    let secs = start.elapsed().as_secs_f64();
    client.close();
    Ok(vec![figure("rate", (per_worker * WORKERS) as f64 / secs, "streams/s")])
}

/// Resident memory of this process, in bytes (Linux); `None` elsewhere.
pub fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The client end of the idle workload: opens one stream (so that
/// connection-wide buffers are not counted), then `count` idle streams, and
/// returns this process's resident-set growth per stream.
/// `report` gets the figure; the streams stay open until `hold` completes.
pub async fn idle_client(
    which: TokioImpl,
    addr: std::net::SocketAddr,
    count: usize,
    report: impl FnOnce(f64),
    hold: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let client = mux::connect_to(which, addr, count + 1).await?;
    let mut first = client.open().await?;
    first.write_all(&[HOLD]).await?;
    first.read_exact(&mut [0u8; 1]).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss().ok_or_else(|| io::Error::other("no /proc/self/statm"))?;
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = client.open().await?;
        stream.write_all(&[HOLD]).await?;
        stream.read_exact(&mut [0u8; 1]).await?;
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss().ok_or_else(|| io::Error::other("no /proc/self/statm"))?;
    report(after.saturating_sub(before) as f64 / count as f64);
    // Open until the server end has measured too.
    hold.await;
    drop((streams, first));
    client.close();
    Ok(())
}

/// The server end of the idle workload: serves hold streams (a task and a
/// 64-byte buffer each, the application's cost) and returns this process's
/// resident-set growth per stream between the first and the last of `count + 1`.
/// `listening` gets the address to give the client.
pub async fn idle_server(
    which: TokioImpl,
    count: usize,
    listening: impl FnOnce(std::net::SocketAddr),
) -> io::Result<f64> {
    let addr = mux::listen(which, count + 1).await?;
    listening(addr);
    let held = || mux::HELD.load(std::sync::atomic::Ordering::Relaxed);
    while held() < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss().ok_or_else(|| io::Error::other("no /proc/self/statm"))?;
    while held() < count + 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss().ok_or_else(|| io::Error::other("no /proc/self/statm"))?;
    Ok(after.saturating_sub(before) as f64 / count as f64)
}

/// The metric name of an open burst of `n` streams.
fn burst_metric(n: usize) -> &'static str {
    match n {
        1_000 => "rate-1k",
        10_000 => "rate-10k",
        100_000 => "rate-100k",
        _ => "rate",
    }
}

/// `n` streams opened at once, far beyond the default `max_streams`, each
/// echoing 16 bytes: streams per second, for each burst size in turn.
pub async fn open_burst(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for &n in sizes.bursts {
        // The default limits: the burst waits for places, as a real one does.
        let client = Arc::new(mux::connect(which, 0).await?);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for index in 0..n {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut message = [ECHO; 17];
                message[1..].copy_from_slice(&(index as u128).to_be_bytes());
                let mut stream = client.open().await?;
                stream.write_all(&message).await?;
                stream.shutdown().await?;
                let mut back = Vec::with_capacity(16);
                stream.read_to_end(&mut back).await?;
                if back != message[1..] {
                    let why = format!("an echo came back with {} of its 16 bytes, or altered", back.len());
                    return Err(io::Error::other(why));
                }
                Ok::<(), io::Error>(())
            }));
        }
        for task in tasks {
            task.await.map_err(io::Error::other)??;
        }
        let secs = start.elapsed().as_secs_f64();
        client.close();
        figures.push(figure(burst_metric(n), n as f64 / secs, "streams/s"));
    }
    Ok(figures)
}

/// 16 streams sending bulk at once: how evenly the link is shared. `min/max`
/// is the first stream's completion time over the last's (1.0: all finish
/// together; 1/16: one after the other).
pub async fn fairness(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    const STREAMS: usize = 16;
    let client = Arc::new(mux::connect(which, STREAMS).await?);
    let chunk = Arc::new(vec![0x5au8; 64 * 1024]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let client = client.clone();
        let chunk = chunk.clone();
        let len = sizes.fairness;
        tasks.push(tokio::spawn(async move {
            send_bulk(&client, len, &chunk).await?;
            Ok::<Duration, io::Error>(start.elapsed())
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.map_err(io::Error::other)??);
    }
    let first = done.iter().min().copied().unwrap_or_default();
    let last = done.iter().max().copied().unwrap_or_default();
    client.close();
    Ok(vec![
        figure("min/max", first.as_secs_f64() / last.as_secs_f64(), "ratio"),
        figure(
            "throughput",
            (STREAMS * sizes.fairness) as f64 / last.as_secs_f64() / 1e6,
            "MB/s",
        ),
    ])
}

/// One bulk stream of `rr_under_load`: writes 64 KiB chunks until its task
/// is aborted, counting each chunk in `sent`. It reads too (the sink's answer
/// never comes): tokio-yamux applies window updates only while the stream is
/// read.
async fn push_until_aborted(client: &mux::Client, sent: &std::sync::atomic::AtomicU64) -> io::Result<()> {
    let stream = client.open().await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let reading = async {
        reader.read_exact(&mut [0u8; 1]).await?;
        Err::<(), _>(io::Error::other("the sink answered before the bulk ended"))
    };
    tokio::try_join!(write_chunks(&mut writer, sent), reading).map(|_| ())
}

async fn write_chunks(
    writer: &mut (impl tokio::io::AsyncWrite + Unpin),
    sent: &std::sync::atomic::AtomicU64,
) -> io::Result<()> {
    writer.write_all(&[SINK]).await?;
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        writer.write_all(&chunk).await?;
        sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// 64-byte round trips on one stream while 8 other streams of the same
/// session (connections, for raw TCP) push bulk data as fast as they can: the
/// latency a small request sees behind bulk, and the bulk throughput reached.
/// Runs `loaded_round_trips` round trips or for `loaded_for`, whichever ends
/// first.
pub async fn rr_under_load(which: TokioImpl, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    const BULK: usize = 8;
    let client = Arc::new(mux::connect(which, BULK + 1).await?);
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut pushers = Vec::new();
    for _ in 0..BULK {
        let client = client.clone();
        let sent = sent.clone();
        pushers.push(tokio::spawn(async move { push_until_aborted(&client, &sent).await }));
    }
    // The same head start for every implementation, so that each is measured
    // with its buffers and windows as the bulk has filled them. Then the
    // request stream opens, as a user's would, while the bulk flows; one round
    // trip warms it (a hundred, as `rr` does, would take seconds behind bulk
    // on the slower implementations and give them a longer head start).
    tokio::time::sleep(sizes.loaded_for / 2).await;
    let mut stream = warm_echo_stream(&client, 1).await?;
    let start = Instant::now();
    let sent_before = sent.load(std::sync::atomic::Ordering::Relaxed);
    let mut samples = Vec::with_capacity(sizes.loaded_round_trips);
    // Bounded in time as well: behind bulk, a round trip can take milliseconds.
    while samples.len() < sizes.loaded_round_trips && start.elapsed() < sizes.loaded_for {
        samples.push(round_trip(&mut stream).await?);
    }
    let secs = start.elapsed().as_secs_f64();
    let bulk = sent.load(std::sync::atomic::Ordering::Relaxed) - sent_before;
    // The bulk is not drained: what sits in windows and buffers would take
    // seconds on the slower implementations and measures nothing more. A
    // pusher that already ended failed; its error is the result.
    for pusher in pushers {
        if pusher.is_finished() {
            pusher.await.map_err(io::Error::other)??;
        } else {
            pusher.abort();
        }
    }
    drop(stream);
    client.close();
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Ok(vec![
        figure("p50", at(0.5), "us"),
        figure("p99", at(0.99), "us"),
        figure("p99.9", at(0.999), "us"),
        figure("bulk", bulk as f64 / secs / 1e6, "MB/s"),
    ])
}
