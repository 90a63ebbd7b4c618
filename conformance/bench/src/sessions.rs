//! The sessions workload: many sessions on one server, a few streams each,
//! then idle. The server runs in a process of its own, so that its resident
//! set is the server's alone; this process is the clients.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::mux::{self, TokioImpl, ECHO};
use crate::workloads::{rss, Figure};

/// Streams per session, and bytes echoed on each.
const STREAMS: usize = 4;
const ECHOED: usize = 64 * 1024;
/// How long the sessions sit idle before the server measures.
const QUIET: Duration = Duration::from_millis(1_500);

/// `--sessions-server NAME COUNT RUNTIME`: serves, prints its address, and
/// on a line from stdin prints its resident-set growth and its live-heap
/// growth per session; ends when stdin closes.
pub fn server_main(mut rest: impl Iterator<Item = String>) -> ! {
    let name = rest.next().unwrap_or_default();
    let count: usize = rest.next().and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
    let multi_thread = rest.next().as_deref() != Some("current");
    let Some(which) = TokioImpl::ALL.into_iter().find(|w| w.name() == name) else {
        eprintln!("unknown implementation {name}");
        std::process::exit(1);
    };
    crate::heap::start();
    let runtime = crate::build_runtime(multi_thread);
    runtime.block_on(async {
        let before = rss().unwrap_or(0);
        let heap_before = crate::heap::live();
        let addr = match mux::listen(which, STREAMS).await {
            Ok(addr) => addr,
            Err(err) => {
                eprintln!("{err}");
                std::process::exit(1);
            }
        };
        say(&addr.to_string());
        // A line on stdin is the cue to measure; its end, to stop.
        let line = || {
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                io::stdin().lock().read_line(&mut line).is_ok_and(|n| n > 0)
            })
        };
        if line().await.unwrap_or(false) {
            let after = rss().unwrap_or(0);
            let heap = (crate::heap::live() - heap_before) as f64 / count as f64;
            say(&format!(
                "{} {heap}",
                after.saturating_sub(before) as f64 / count as f64
            ));
            let _ = line().await;
        }
    });
    std::process::exit(0);
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One repetition: `count` client sessions against a server process, each
/// echoing 64 KiB on each of 4 streams at once; then, all of them idle, the
/// server's resident-set growth and live-heap growth per session.
pub async fn measure(which: TokioImpl, count: usize, multi_thread: bool) -> io::Result<Vec<Figure>> {
    let exe = std::env::current_exe()?;
    let runtime = if multi_thread { "multi" } else { "current" };
    let mut server = Command::new(exe)
        .args(["--sessions-server", which.name(), &count.to_string(), runtime])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = server.stdin.take().ok_or_else(|| io::Error::other("no stdin"))?;
    let mut stdout = BufReader::new(server.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?);
    let outcome = async {
        let addr = read_line(&mut stdout)?
            .parse()
            .map_err(|_| io::Error::other("the sessions server gave no address"))?;
        let (total, completions, clients) = run_clients(which, addr, count).await?;
        // All idle now: the server measures.
        writeln!(stdin, "measure")?;
        stdin.flush()?;
        let figures = read_line(&mut stdout)?;
        let no_figure = || io::Error::other("the sessions server gave no figure");
        let mut figures = figures
            .split(' ')
            .map(|figure| figure.parse::<f64>().map_err(|_| no_figure()));
        let per_session = (
            figures.next().ok_or_else(no_figure)??,
            figures.next().ok_or_else(no_figure)??,
        );
        for client in &clients {
            client.close();
        }
        Ok::<_, io::Error>((total, completions, per_session))
    }
    .await;
    drop(stdin);
    if outcome.is_err() {
        let _ = server.kill();
    }
    let _ = server.wait();
    let (total, mut completions, per_session) = outcome?;
    completions.sort();
    let p99 = completions[((completions.len() - 1) as f64 * 0.99) as usize];
    Ok(vec![
        Figure {
            metric: "total",
            value: total.as_secs_f64() * 1e3,
            unit: "ms",
        },
        Figure {
            metric: "p99-stream",
            value: p99.as_secs_f64() * 1e3,
            unit: "ms",
        },
        Figure {
            metric: "server-rss",
            value: per_session.0,
            unit: "bytes/session",
        },
        Figure {
            metric: "server-heap",
            value: per_session.1,
            unit: "bytes/session",
        },
    ])
}

fn read_line(from: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    from.read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Connects `count` sessions at once and echoes on 4 streams of each: the
/// total time, every stream's completion time, and the sessions (kept open).
async fn run_clients(
    which: TokioImpl,
    addr: std::net::SocketAddr,
    count: usize,
) -> io::Result<(Duration, Vec<Duration>, Vec<Arc<mux::Client>>)> {
    let start = Instant::now();
    let mut clients = Vec::with_capacity(count);
    // Connected 100 at a time: a thousand SYNs at once overflow the listen
    // queue, and the kernel then resets some of them, whatever the mux.
    while clients.len() < count {
        let wave: Vec<_> = (clients.len()..count.min(clients.len() + 100))
            .map(|_| tokio::spawn(async move { mux::connect_to(which, addr, STREAMS).await.map(Arc::new) }))
            .collect();
        for session in wave {
            clients.push(session.await.map_err(io::Error::other)??);
        }
    }
    let payload: Arc<Vec<u8>> = Arc::new((0..ECHOED).map(|i| (i % 251) as u8).collect());
    let mut streams = Vec::with_capacity(count * STREAMS);
    for client in &clients {
        for _ in 0..STREAMS {
            let client = client.clone();
            let payload = payload.clone();
            streams.push(tokio::spawn(async move {
                let opened = Instant::now();
                let stream = client.open().await?;
                let (mut reader, mut writer) = tokio::io::split(stream);
                let writing = async {
                    writer.write_all(&[ECHO]).await?;
                    writer.write_all(&payload).await?;
                    writer.shutdown().await
                };
                let mut back = Vec::with_capacity(ECHOED);
                let (written, read) = tokio::join!(writing, reader.read_to_end(&mut back));
                written?;
                read?;
                if back != *payload {
                    return Err(io::Error::other(format!(
                        "an echo came back with {} of {ECHOED} bytes, or altered",
                        back.len()
                    )));
                }
                Ok::<Duration, io::Error>(opened.elapsed())
            }));
        }
    }
    let mut completions = Vec::with_capacity(streams.len());
    for stream in streams {
        completions.push(stream.await.map_err(io::Error::other)??);
    }
    let total = start.elapsed();
    // Idle for a while before the server measures: the last acknowledgements
    // and window updates settle, and quiet links give their buffers back.
    tokio::time::sleep(QUIET).await;
    Ok((total, completions, clients))
}
