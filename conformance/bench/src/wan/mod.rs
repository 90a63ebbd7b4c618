//! The `wan` workload: a long fat path as the network really fails, on
//! hawser-conformance's packet-level emulated path (two network namespaces,
//! kernel TCP at both ends; Linux and root). It needs to be asked for
//! (`--workload wan`) and prints why it cannot run where it cannot.
//!
//! On a 100 ms round trip at 500 Mbit/s with a 4 MiB drop-tail queue, side by
//! side in one run:
//! - throughput, one connection and eight, for direct TCP, hawser-tokio
//!   (resumable, its defaults), the `yamux` crate and the hawser tunnel with
//!   TLS (in process, its defaults), and `ssh -L` where `sshd` is installed;
//! - how soon data arrives again after a 10 s blackhole ends, and after the
//!   client moves to another address, with the longest gap in the flow (an
//!   upload whose every byte is checked where it arrives);
//! - false alarms: suspicions, redials and resumes while eight streams
//!   saturate the path, and the smoothed RTT then.
//!
//! The goals are printed beside the figures.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_conformance::interop::link::Pattern;
use hawser_conformance::path::{EmulatedPath, Outage, PathSpec, Side};
use hawser_tokio::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use crate::mux::{self, Client, TokioImpl, COUNT, ECHO, SINK};

mod ssh;

/// The ways across the path: `ssh -L` too where `sshd` is installed.
fn impls() -> Vec<&'static str> {
    let mut impls = vec!["direct-tcp", "hawser-tokio", "yamux", "tunnel-tls"];
    if crate::ssh::sshd().is_some() {
        impls.push("ssh");
    }
    impls
}

/// Those that promise to survive an outage.
const RESUMABLE: [&str; 2] = ["hawser-tokio", "tunnel-tls"];

/// How much each part moves or lasts.
struct Plan {
    one: usize,
    eight_each: usize,
    /// How long a flow runs before the outage.
    warm: Duration,
    silence: Duration,
    /// How long to wait for data after the path is usable before calling the
    /// connection lost.
    give_up: Duration,
    saturate: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                one: 8 << 20,
                eight_each: 1 << 20,
                warm: Duration::from_secs(1),
                silence: Duration::from_secs(2),
                give_up: Duration::from_secs(3),
                saturate: Duration::from_secs(3),
            }
        } else {
            Plan {
                one: 128 << 20,
                eight_each: 16 << 20,
                warm: Duration::from_secs(3),
                silence: Duration::from_secs(10),
                give_up: Duration::from_secs(30),
                saturate: Duration::from_secs(60),
            }
        }
    }
}

/// The two ends of one emulated path, each with a runtime whose threads were
/// started inside its namespace: what their tasks dial or bind is there.
struct Ends {
    path: Arc<EmulatedPath>,
    server: Runtime,
    client: Runtime,
}

impl Ends {
    fn new(spec: PathSpec) -> io::Result<Ends> {
        let path = Arc::new(EmulatedPath::new(spec).map_err(io::Error::other)?);
        let runtime_in = |side| {
            path.spawn_in(side, || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            })
            .join()
            .map_err(|_| io::Error::other("a namespace thread panicked"))?
        };
        let server = runtime_in(Side::Server)?;
        let client = runtime_in(Side::Client)?;
        Ok(Ends { path, server, client })
    }

    /// Runs `task` on a server worker (inside the server's namespace).
    fn on_server<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
        self.server.block_on(self.server.spawn(task)).map_err(io::Error::other)
    }

    /// Runs `task` on a client worker (inside the client's namespace).
    fn on_client<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
        self.client.block_on(self.client.spawn(task)).map_err(io::Error::other)
    }
}

/// A way across, set up: the client to open streams with, and the status of
/// the hawser session under it, where there is one.
struct Across {
    client: Arc<Client>,
    /// Keeps what carries the streams running (a tunnel client, ssh).
    _keep: Box<dyn std::any::Any + Send + Sync>,
    status: Box<dyn Fn() -> Option<Status> + Send + Sync>,
}

/// Starts `which`'s server and client on `ends`, with room for `streams`.
fn set_up(ends: &Ends, which: &'static str, streams: usize) -> io::Result<Across> {
    let server_addr = SocketAddr::from((ends.path.server_ip(), 7000));
    let tokio_impl = match which {
        "hawser-tokio" => TokioImpl::HawserResume,
        "yamux" => TokioImpl::Yamux,
        _ => TokioImpl::RawTcp,
    };
    if which == "ssh" {
        return ssh::set_up(ends, streams);
    }
    if which == "tunnel-tls" {
        let keys = Arc::new(crate::tunnel::Keys::new(true)?);
        let serving = keys.clone();
        let target = ends.on_server(async move {
            // The target speaks the benchmark's stream protocol over plain TCP.
            let target = TcpListener::bind("127.0.0.1:0").await?;
            let target_addr = target.local_addr()?;
            mux::serve_on(TokioImpl::RawTcp, target, streams);
            serving.serve(TcpListener::bind(server_addr).await?, target_addr)?;
            Ok::<_, io::Error>(target_addr)
        })??;
        let (local, tunnel) =
            ends.on_client(async move { keys.client(server_addr, target, hawser_tunnel::retry_policy()).await })??;
        let status_of = tunnel.clone();
        return Ok(Across {
            client: Arc::new(Client::Raw(local)),
            _keep: Box::new(tunnel),
            status: Box::new(move || status_of.session().map(|control| control.status())),
        });
    }
    ends.on_server(async move {
        mux::serve_on(tokio_impl, TcpListener::bind(server_addr).await?, streams);
        Ok::<_, io::Error>(())
    })??;
    let client = Arc::new(ends.on_client(mux::connect_to(tokio_impl, server_addr, streams))??);
    let status_of = client.clone();
    Ok(Across {
        client,
        _keep: Box::new(()),
        status: Box::new(move || match &*status_of {
            Client::Hawser(session) => Some(session.status()),
            _ => None,
        }),
    })
}

/// Moves `each` bytes on each of `streams` sink streams; Mbit/s in all.
async fn throughput(client: Arc<Client>, streams: usize, each: usize) -> io::Result<f64> {
    let chunk = Arc::new(vec![0x5au8; 64 * 1024]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, chunk) = (client.clone(), chunk.clone());
        tasks.push(tokio::spawn(async move {
            crate::workloads::send_bulk(&client, each, &chunk).await
        }));
    }
    for task in tasks {
        task.await.map_err(io::Error::other)??;
    }
    Ok((streams * each) as f64 * 8.0 / 1e6 / started.elapsed().as_secs_f64())
}

/// What one outage did to an upload, seen where it arrives.
struct Ride {
    /// From the path being usable again to the next byte arriving, or why
    /// none will: none came within the plan's `give_up`, or the connection
    /// ended.
    back_after: Result<Duration, String>,
    /// The longest time without a byte arriving, over the whole run.
    longest_gap: Duration,
}

/// Keeps an upload going on a `COUNT` stream (the server checks every byte
/// and records when it arrives), imposes `outage` once the flow is warm, and
/// measures how soon bytes arrive again.
async fn ride(
    client: Arc<Client>,
    path: Arc<EmulatedPath>,
    outage: Outage,
    warm: Duration,
    give_up: Duration,
) -> io::Result<Ride> {
    let arrivals = || mux::ARRIVALS.lock().unwrap_or_else(|p| p.into_inner());
    *arrivals() = mux::Arrivals::NONE;
    let mut stream = client.open().await?;
    // It writes until aborted; should a write fail, the server side sees the
    // stream end and reports that.
    let writer = tokio::spawn(async move {
        let mut pattern = Pattern::new(mux::COUNT_SEED);
        if stream.write_all(&[COUNT]).await.is_ok() {
            while stream.write_all(&pattern.take(16 * 1024)).await.is_ok() {}
        }
    });
    tokio::time::sleep(warm).await;
    if arrivals().bytes == 0 {
        writer.abort();
        return Err(io::Error::other("nothing arrived before the outage"));
    }
    let imposed = path.impose(outage);
    let usable = tokio::task::spawn_blocking(move || imposed.join())
        .await
        .map_err(io::Error::other)?
        .map_err(|_| io::Error::other("imposing the outage panicked"))?;
    let back_after = loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let arrivals = arrivals();
        if let Some(broken) = &arrivals.broken {
            let since = arrivals.last_byte.map_or(Duration::ZERO, |last| last.elapsed());
            break Err(format!("lost: {broken} ({} after the last byte)", seconds(since)));
        }
        match arrivals.last_byte {
            Some(last) if last > usable => break Ok(last - usable),
            _ if usable.elapsed() > give_up => break Err(format!("lost: nothing in {}", seconds(give_up))),
            _ => {}
        }
    };
    if back_after.is_ok() {
        // A second more of flow: the longest gap is over, and it keeps going.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    writer.abort();
    let arrivals = arrivals();
    let since_last = arrivals.last_byte.map_or(Duration::ZERO, |last| last.elapsed());
    Ok(Ride {
        back_after,
        longest_gap: arrivals.longest_gap.max(since_last),
    })
}

/// What saturating the path showed.
struct Saturated {
    mbits: f64,
    /// Round trips of 64 bytes on one more stream meanwhile: p50 and p99.
    round_trip: (Duration, Duration),
}

/// Keeps `streams` sink streams writing for `length`, while one more stream
/// makes 64-byte round trips one after another (from 2 s in, once the
/// queues are full).
async fn saturate(client: Arc<Client>, streams: usize, length: Duration) -> io::Result<Saturated> {
    let until = Instant::now() + length;
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let stream = client.open().await?;
            let (mut reader, mut writer) = tokio::io::split(stream);
            let writing = async {
                writer.write_all(&[SINK]).await?;
                let chunk = vec![0x5au8; 64 * 1024];
                let mut sent = 0u64;
                while Instant::now() < until {
                    writer.write_all(&chunk).await?;
                    sent += chunk.len() as u64;
                }
                writer.shutdown().await?;
                Ok::<_, io::Error>(sent)
            };
            let mut answer = [0u8; 1];
            let (sent, read) = tokio::join!(writing, reader.read_exact(&mut answer));
            read?;
            sent
        }));
    }
    let started = Instant::now();
    let probe = tokio::spawn(async move {
        let mut stream = client.open().await?;
        stream.write_all(&[ECHO]).await?;
        tokio::time::sleep(Duration::from_secs(2).min(length / 2)).await;
        let mut samples = Vec::new();
        while Instant::now() < until {
            let sent_at = Instant::now();
            stream.write_all(&[0x42u8; 64]).await?;
            stream.read_exact(&mut [0u8; 64]).await?;
            samples.push(sent_at.elapsed());
        }
        samples.sort();
        let at = |q: f64| samples.get(((samples.len().max(1) - 1) as f64 * q) as usize).copied();
        match (at(0.5), at(0.99)) {
            (Some(p50), Some(p99)) => Ok((p50, p99)),
            _ => Err(io::Error::other("no round trip completed under load")),
        }
    });
    let mut sent = 0;
    for task in tasks {
        sent += task.await.map_err(io::Error::other)??;
    }
    let mbits = sent as f64 * 8.0 / 1e6 / started.elapsed().as_secs_f64();
    let round_trip = probe.await.map_err(io::Error::other)??;
    Ok(Saturated { mbits, round_trip })
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Runs the workload `reps` times; `quick` shrinks every part; `only` picks
/// one way across.
pub fn run(quick: bool, reps: usize, only: Option<&str>) {
    let picked = |which: &&str| only.map_or(true, |only| only == *which);
    let spec = PathSpec::wan();
    if let Err(unavailable) = EmulatedPath::new(spec) {
        println!("wan: skipped: {unavailable}");
        return;
    }
    let plan = Plan::new(quick);
    let rtt = spec.one_way_delay * 2;
    let silence_goal = Duration::from_secs(1) + rtt * 4;
    let move_goal = Duration::from_secs(3);
    println!(
        "wan: {} ms round trip, {} Mbit/s, {} MiB drop-tail queue{}",
        rtt.as_millis(),
        spec.rate_bits_per_sec.unwrap_or(0) / 1_000_000,
        spec.queue_bytes >> 20,
        if quick {
            " (quick: smaller sizes, shorter outages)"
        } else {
            ""
        }
    );
    if crate::ssh::sshd().is_none() {
        println!("ssh -L: skipped (sshd is not installed)");
    }
    for rep in 1..=reps {
        println!();
        println!("run {rep} of {reps}");
        println!(
            "  {:<14} {:>12} {:>12}   (Mbit/s; {} MiB on one connection, 8 x {} MiB)",
            "throughput",
            "1 conn",
            "8 conns",
            plan.one >> 20,
            plan.eight_each >> 20
        );
        let mut direct = None;
        for which in impls().into_iter().filter(picked) {
            let figures = Ends::new(spec).and_then(|ends| {
                let across = set_up(&ends, which, 8)?;
                let (client, one, each) = (across.client.clone(), plan.one, plan.eight_each);
                ends.on_client(async move {
                    let single = throughput(client.clone(), 1, one).await?;
                    let eight = throughput(client, 8, each).await?;
                    Ok::<_, io::Error>((single, eight))
                })?
            });
            match figures {
                Ok((single, eight)) => {
                    if which == "direct-tcp" {
                        direct = Some((single, eight));
                    }
                    let versus = match direct {
                        Some((d1, d8)) if which != "direct-tcp" => {
                            format!("   {:.2}x / {:.2}x direct TCP", single / d1, eight / d8)
                        }
                        _ => String::new(),
                    };
                    println!("  {which:<14} {single:>12.1} {eight:>12.1}{versus}");
                }
                Err(e) => println!("  {which:<14} failed: {e}"),
            }
        }
        for (outage, goal, what) in [
            (
                Outage::Silence(plan.silence),
                silence_goal,
                format!("after {} s of silence ends", plan.silence.as_secs()),
            ),
            (Outage::ClientMoves, move_goal, "after the client moves".to_string()),
        ] {
            println!(
                "  data arrives again {what} (goal for hawser: within {}), longest gap",
                seconds(goal)
            );
            for which in impls().into_iter().filter(picked) {
                let figures = Ends::new(spec).and_then(|ends| {
                    let across = set_up(&ends, which, 1)?;
                    let ride = ends.on_client(ride(
                        across.client.clone(),
                        ends.path.clone(),
                        outage,
                        plan.warm,
                        plan.give_up,
                    ))??;
                    Ok((ride, (across.status)()))
                });
                match figures {
                    Ok((ride, status)) => {
                        let back = match ride.back_after {
                            Ok(after) => {
                                let mark = if !RESUMABLE.contains(&which) {
                                    ""
                                } else if after <= goal {
                                    "  meets the goal"
                                } else {
                                    "  MISSES the goal"
                                };
                                format!("{}{mark}", seconds(after))
                            }
                            Err(lost) => lost,
                        };
                        let resumes = status.map(|s| format!(", {} resumes", s.resumes)).unwrap_or_default();
                        println!(
                            "    {which:<14} {back:<40} longest gap {}{resumes}",
                            seconds(ride.longest_gap)
                        );
                    }
                    Err(e) => println!("    {which:<14} failed: {e}"),
                }
            }
        }
        println!(
            "  false alarms while 8 streams saturate the path for {} s (goal: no suspicion, no redial)",
            plan.saturate.as_secs()
        );
        for which in RESUMABLE.into_iter().filter(picked) {
            let figures = Ends::new(spec).and_then(|ends| {
                let across = set_up(&ends, which, 8)?;
                let saturated = ends.on_client(saturate(across.client.clone(), 8, plan.saturate))??;
                Ok((saturated, (across.status)()))
            });
            match figures {
                Ok((saturated, Some(status))) => {
                    let alarms = status.suspect_episodes + status.reconnects + status.resumes;
                    println!(
                        "    {which:<14} {} suspicions, {} redials, {} resumes, {} unhealthy{}",
                        status.suspect_episodes,
                        status.reconnects,
                        status.resumes,
                        status.unhealthy_episodes,
                        if alarms == 0 {
                            "  meets the goal"
                        } else {
                            "  MISSES the goal"
                        },
                    );
                    println!(
                        "    {:<14} {:.1} Mbit/s; session's smoothed RTT {}; 64-byte round trips p50 {}, p99 {}",
                        "",
                        saturated.mbits,
                        status.rtt_smoothed.map(millis).unwrap_or_else(|| "unknown".into()),
                        millis(saturated.round_trip.0),
                        millis(saturated.round_trip.1),
                    );
                }
                Ok((_, None)) => println!("    {which:<14} failed: no session to ask"),
                Err(e) => println!("    {which:<14} failed: {e}"),
            }
        }
    }
}
