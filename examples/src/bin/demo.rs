//! The hawser demo: a tokio server and client over loopback TCP in one process.
//! The client opens many streams at once; each sends checksummed data that the
//! server echoes back; every byte is checked, and throughput and RTT are printed.
//! Then the same through a proxy that kills the TCP connection several times in
//! the middle of the transfer: the resumable session redials, replays what was
//! lost, and every byte still arrives once and in order.
//!
//! Run it with `cargo run --release -p hawser-examples --bin demo`.

use std::io;
use std::time::{Duration, Instant};

use hawser_conformance::faults::KillProxy;
use hawser_tokio::{Accepted, Acceptor, Config, GoAwayCode, Resumption, RetryPolicy, Session};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const STREAMS: usize = 64;
const BYTES_PER_STREAM: usize = 4 * 1024 * 1024;

#[tokio::main]
async fn main() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let session = Session::server(tcp, Config::default())?;
        while let Some(mut stream) = session.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = tokio::io::split(&mut stream);
                if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                    let _ = writer.shutdown().await;
                }
            });
        }
        session.closed().await
    });

    let client = Session::client(TcpStream::connect(addr).await?, Config::default())?;
    // An idle round trip first (after the handshake settles), for a clean figure.
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.ping()?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let idle_rtt = client.stats().rtt_last;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..STREAMS {
        let control = client.control();
        tasks.push(tokio::spawn(hawser_examples::tokio_round_trip(
            control,
            index,
            BYTES_PER_STREAM,
        )));
    }
    // Measure the round trip while the transfer runs, too.
    let pinger = {
        let control = client.control();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if control.ping().is_err() {
                    return;
                }
            }
        })
    };
    let mut intact = 0;
    for task in tasks {
        if task.await.map_err(io::Error::other)?? {
            intact += 1;
        }
    }
    let elapsed = start.elapsed();
    pinger.abort();
    let stats = client.stats();
    let loaded_rtt = client.status().rtt_smoothed;
    client.go_away(GoAwayCode::NORMAL)?;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;

    let moved = (STREAMS * BYTES_PER_STREAM * 2) as f64;
    println!("hawser demo: tokio client and server over loopback TCP");
    println!(
        "  {STREAMS} streams x {} MiB echoed: {intact}/{STREAMS} intact (every byte compared)",
        BYTES_PER_STREAM >> 20
    );
    println!(
        "  {:.1} MiB moved in {:.3} s: {:.0} MB/s (both directions, one TCP connection)",
        moved / (1 << 20) as f64,
        elapsed.as_secs_f64(),
        moved / elapsed.as_secs_f64() / 1e6
    );
    let ms = |rtt: Option<Duration>| rtt.map_or("n/a".to_string(), |r| format!("{:.3} ms", r.as_secs_f64() * 1e3));
    println!(
        "  RTT idle: {}   RTT during the transfer (smoothed): {}",
        ms(idle_rtt),
        ms(loaded_rtt)
    );
    println!(
        "  client frames out/in: {}/{}   streams opened: {}",
        stats.frames_out, stats.frames_in, stats.streams_opened
    );
    if intact != STREAMS {
        return Err(io::Error::other("some streams came back corrupted"));
    }
    link_loss().await
}

const RESUMABLE_STREAMS: usize = 16;
const KILLS: u64 = 5;

/// The second part: a resumable session through a proxy that kills the link.
async fn link_loss() -> io::Result<()> {
    let config = Config {
        resumption: Some(Resumption::default()),
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let acceptor = Acceptor::new(config.clone())?;
    let server_addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(Accepted::New(session)) = acceptor.accept(tcp).await {
                    while let Some(mut stream) = session.accept().await {
                        tokio::spawn(async move {
                            let (mut reader, mut writer) = tokio::io::split(&mut stream);
                            if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                                let _ = writer.shutdown().await;
                            }
                        });
                    }
                }
            });
        }
    });
    let proxy = KillProxy::start(server_addr)?;
    let proxy_addr = proxy.addr();
    let client = Session::connect_resumable(proxy_addr, config, RetryPolicy::default()).await?;
    // connect_resumable returns once the session can survive losing its link.

    let start = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..RESUMABLE_STREAMS {
        tasks.push(tokio::spawn(hawser_examples::tokio_round_trip(
            client.control(),
            index,
            BYTES_PER_STREAM,
        )));
    }
    // Kill the connection every 30 ms while the transfer runs.
    let mut done = tasks.iter().filter(|t| t.is_finished()).count();
    while proxy.kills() < KILLS && done < RESUMABLE_STREAMS {
        tokio::time::sleep(Duration::from_millis(30)).await;
        proxy.kill_all();
        done = tasks.iter().filter(|t| t.is_finished()).count();
    }
    let mut intact = 0;
    for task in tasks {
        if task.await.map_err(io::Error::other)?? {
            intact += 1;
        }
    }
    let elapsed = start.elapsed();
    let stats = client.stats();
    client.close(GoAwayCode::NORMAL);

    println!("hawser demo: the same over a link that keeps failing");
    println!(
        "  {RESUMABLE_STREAMS} streams x {} MiB echoed through a proxy that killed the TCP connection {} times: {intact}/{RESUMABLE_STREAMS} intact",
        BYTES_PER_STREAM >> 20,
        proxy.kills()
    );
    println!(
        "  {} reconnects ({} attempts), {} bytes replayed, replay buffer peak {} of {} bytes, {:.3} s",
        stats.resumes,
        client.reconnects(),
        stats.bytes_replayed,
        stats.replay_peak,
        Resumption::default().replay_buffer,
        elapsed.as_secs_f64()
    );
    if intact == RESUMABLE_STREAMS {
        Ok(())
    } else {
        Err(io::Error::other("some streams came back corrupted after link loss"))
    }
}
