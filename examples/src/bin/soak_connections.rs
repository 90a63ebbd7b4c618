//! Soak: a hawser server that sees thousands of short-lived connections must
//! hold nothing for the closed ones. Each round opens N TCP connections to an
//! echo server in this process (one of the three adapters), lets it make a
//! session for each, closes them all, and then reports the sessions still alive
//! (it must fall back to 0) and the resident set (it must stay flat).
//!
//! ```text
//! cargo run --release -p hawser-examples --bin soak_connections -- --runtime tokio --rounds 10 --connections 2000
//! ```

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use hawser_core::Config;

struct Flags {
    runtime: String,
    rounds: usize,
    connections: usize,
    config: Config,
}

fn parse() -> Result<Flags, String> {
    let mut flags = Flags {
        runtime: "tokio".into(),
        rounds: 10,
        connections: 2000,
        config: Config::yamux(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("bad number {value:?} for {flag}"))
        };
        match flag.as_str() {
            "--runtime" => flags.runtime = value.clone(),
            "--rounds" => flags.rounds = number()?,
            "--connections" => flags.connections = number()?,
            "--profile" => {
                flags.config = match value.as_str() {
                    "native" => Config::default(),
                    "yamux" => Config::yamux(),
                    other => return Err(format!("unknown profile {other}")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(flags)
}

/// Starts an echo-less server (each session accepts streams until it ends) and
/// returns its address.
fn start_server(runtime: &str, config: Config) -> Result<SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    match runtime {
        "tokio" => {
            thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
                runtime.block_on(async move {
                    let listener = hawser_tokio::Listener::bind("127.0.0.1:0", config).await.expect("bind");
                    tx.send(listener.local_addr().expect("bound")).expect("main waits");
                    while let Ok((session, _)) = listener.accept().await {
                        tokio::spawn(async move { while session.accept().await.is_some() {} });
                    }
                });
            });
        }
        "async-std" => {
            thread::spawn(move || {
                async_std::task::block_on(async move {
                    let listener = hawser_async_std::Listener::bind("127.0.0.1:0", config)
                        .await
                        .expect("bind");
                    tx.send(listener.local_addr().expect("bound")).expect("main waits");
                    while let Ok((session, _)) = listener.accept().await {
                        async_std::task::spawn(async move { while session.accept().await.is_some() {} });
                    }
                });
            });
        }
        "blocking" => {
            thread::spawn(move || {
                let listener = hawser_blocking::Listener::bind("127.0.0.1:0", config).expect("bind");
                tx.send(listener.local_addr().expect("bound")).expect("main waits");
                while let Ok((session, _)) = listener.accept() {
                    thread::spawn(move || while session.accept().is_some() {});
                }
            });
        }
        other => return Err(format!("unknown runtime {other} (tokio, async-std or blocking)")),
    }
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the server did not start".to_string())
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wait_for_sessions(at_least: usize, at_most: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = hawser_driver::live_sessions();
        if (at_least..=at_most).contains(&live) || Instant::now() > deadline {
            return live;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn main() -> ExitCode {
    let flags = match parse() {
        Ok(flags) => flags,
        Err(problem) => {
            eprintln!("soak_connections: {problem}");
            eprintln!("usage: soak_connections [--runtime tokio|async-std|blocking] [--profile native|yamux] [--rounds N] [--connections N]");
            return ExitCode::from(2);
        }
    };
    let addr = match start_server(&flags.runtime, flags.config) {
        Ok(addr) => addr,
        Err(problem) => {
            eprintln!("soak_connections: {problem}");
            return ExitCode::from(2);
        }
    };
    let mut first = None;
    let mut last = None;
    for round in 1..=flags.rounds {
        let links: Result<Vec<_>, _> = (0..flags.connections).map(|_| TcpStream::connect(addr)).collect();
        let links = match links {
            Ok(links) => links,
            Err(err) => {
                eprintln!("soak_connections: connect failed: {err}");
                return ExitCode::FAILURE;
            }
        };
        let made = wait_for_sessions(flags.connections, usize::MAX);
        drop(links);
        let left = wait_for_sessions(0, 0);
        let rss = resident_kib();
        println!(
            "round {round}: {made} sessions made, {left} still alive after the links closed, resident {}",
            rss.map_or("n/a".into(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0))
        );
        if left != 0 {
            eprintln!("soak_connections: {left} sessions outlived their closed links");
            return ExitCode::FAILURE;
        }
        first = first.or(rss);
        last = rss;
    }
    if let (Some(first), Some(last)) = (first, last) {
        println!(
            "soak_connections ({}): resident set after round 1 {:.1} MiB, after round {} {:.1} MiB",
            flags.runtime,
            first as f64 / 1024.0,
            flags.rounds,
            last as f64 / 1024.0
        );
    }
    ExitCode::SUCCESS
}
