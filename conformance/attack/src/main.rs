//! Attack soak: hostile clients against a resumable hawser server with the
//! default config, for each adapter's acceptor, while a legitimate client keeps
//! resuming through it. Reports the server's resident set against its
//! detached-memory budget, what the budgets did, and whether the legitimate
//! client got through. Exits non-zero if a bound did not hold.
//!
//! ```text
//! cargo run --release -p hawser-attack-soak -- --runtime all --seconds 25
//! ```
//!
//! The attacks, all from 127.0.0.1 (the legitimate client comes from ::1):
//! - download-and-drop: open a 16 MiB download, never acknowledge, drop the
//!   link once the server stalls (each such session holds its 4 MiB replay
//!   buffer and its send buffer);
//! - handshake-and-drop: complete the handshake, take the ticket, drop;
//! - token guessing: resume requests for a real session id with random tokens.
//!
//! The server runs in a child process, so that its resident set is its own.
//!
//! `--registry-scaling` instead prints what registering a session costs with
//! 1k to 100k sessions already registered.

mod attacks;
mod legit;
mod scaling;
mod server;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A number from `/proc/<pid>/status` (Linux): `VmRSS:` in KiB, `Threads:`.
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status(pid, "VmRSS:")
}

struct Flags {
    runtimes: Vec<String>,
    seconds: u64,
}

fn parse(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags {
        runtimes: vec!["tokio".into(), "async-std".into(), "blocking".into()],
        seconds: 25,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runtime" => {
                flags.runtimes = match value.as_str() {
                    "all" => flags.runtimes,
                    "tokio" | "async-std" | "blocking" => vec![value.clone()],
                    other => return Err(format!("unknown runtime {other}")),
                }
            }
            "--seconds" => flags.seconds = value.parse().map_err(|_| format!("bad number {value:?}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(flags)
}

/// The server's last report, and the peaks seen.
#[derive(Clone, Copy, Default, Debug)]
struct Seen {
    sessions: u64,
    detached: u64,
    held: u64,
    shed: u64,
    refused: u64,
    rate_limited: u64,
    rss_kib: u64,
    threads: u64,
    peak_detached: u64,
    peak_held: u64,
    peak_rss_kib: u64,
}

#[derive(Clone, Copy)]
enum Attack {
    Download,
    Handshake,
    Guess,
}

struct Server {
    child: Child,
    v4: SocketAddr,
    v6: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

fn start_server(runtime: &str) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;
    let mut child = Command::new(exe)
        .args(["--serve", runtime])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start the server: {err}"))?;
    let stdout = child.stdout.take().ok_or("no server output")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .ok_or("the server said nothing")?
        .map_err(|err| err.to_string())?;
    let mut words = first.split_whitespace().skip(1);
    let mut addr = || -> Result<SocketAddr, String> {
        words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or(format!("bad first line {first:?}"))
    };
    let (v4, v6) = (addr()?, addr()?);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen_by_reader = seen.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let numbers: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
            let [sessions, detached, held, shed, refused, rate_limited, rss_kib, threads] = numbers[..] else {
                continue;
            };
            let mut seen = seen_by_reader.lock().unwrap_or_else(|p| p.into_inner());
            *seen = Seen {
                sessions,
                detached,
                held,
                shed,
                refused,
                rate_limited,
                rss_kib,
                threads,
                peak_detached: seen.peak_detached.max(detached),
                peak_held: seen.peak_held.max(held),
                peak_rss_kib: seen.peak_rss_kib.max(rss_kib),
            };
        }
    });
    Ok(Server { child, v4, v6, seen })
}

fn soak(runtime: &str, seconds: u64) -> Result<bool, String> {
    let mut server = start_server(runtime)?;
    std::thread::sleep(Duration::from_secs(1));
    let baseline_kib = rss_kib(server.child.id()).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(attacks::Tally::default());
    let ticket = Arc::new(Mutex::new(None));
    let legit = {
        let (addr, stop) = (server.v6, stop.clone());
        std::thread::spawn(move || legit::run(addr, stop))
    };
    // Each attack alone (so that each budget shows), then all at once. The
    // downloads get two fifths of the time: on loopback they need about ten
    // seconds to fill the detached budget.
    let phases: [(&str, &[Attack], u64); 4] = [
        ("download-and-drop", &[Attack::Download, Attack::Download], 2),
        ("handshake-and-drop", &[Attack::Handshake], 1),
        ("token guessing", &[Attack::Guess], 1),
        ("all at once", &[Attack::Download, Attack::Handshake, Attack::Guess], 1),
    ];
    for (name, attacks, fifths) in phases {
        let phase_time = Duration::from_millis((seconds * 200 * fifths).max(2_000));
        let phase_stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for attack in attacks {
            let (v4, phase_stop, tally, ticket) = (server.v4, phase_stop.clone(), tally.clone(), ticket.clone());
            threads.push(std::thread::spawn(move || match attack {
                Attack::Download => attacks::download_and_drop(v4, &phase_stop, &tally),
                Attack::Handshake => attacks::handshake_and_drop(v4, &phase_stop, &tally, &ticket),
                Attack::Guess => attacks::guess_tokens(v4, &phase_stop, &tally, &ticket),
            }));
        }
        if matches!(attacks, [Attack::Guess]) {
            // The guesser needs a real id: one handshake gives it one.
            let (v4, tally, ticket) = (server.v4, tally.clone(), ticket.clone());
            let _ = std::thread::spawn(move || {
                while ticket.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
                    attacks::handshake_and_drop_once(v4, &tally, &ticket);
                }
            });
        }
        let started = Instant::now();
        let mut peak = Seen::default();
        while started.elapsed() < phase_time {
            std::thread::sleep(Duration::from_millis(250));
            let seen = *server.seen.lock().unwrap_or_else(|p| p.into_inner());
            peak.rss_kib = peak.rss_kib.max(seen.rss_kib);
            peak.held = peak.held.max(seen.held);
            peak.detached = peak.detached.max(seen.detached);
            peak.sessions = peak.sessions.max(seen.sessions);
            peak.threads = peak.threads.max(seen.threads);
            peak.shed = seen.shed;
            peak.refused = seen.refused;
            peak.rate_limited = seen.rate_limited;
        }
        phase_stop.store(true, Ordering::Relaxed);
        for thread in threads {
            let _ = thread.join();
        }
        println!(
            "  {runtime}, {name}: peak rss {} MiB, {} threads, {} sessions, {} detached holding {} MiB; so far {} shed, {} refused, {} rate-limited",
            peak.rss_kib / 1024,
            peak.threads,
            peak.sessions,
            peak.detached,
            peak.held >> 20,
            peak.shed,
            peak.refused,
            peak.rate_limited
        );
    }
    stop.store(true, Ordering::Relaxed);
    let outcome = legit.join().map_err(|_| "the legitimate client panicked")?;
    std::thread::sleep(Duration::from_millis(500));
    let seen = *server.seen.lock().unwrap_or_else(|p| p.into_inner());
    let _ = server.child.kill();
    let _ = server.child.wait();

    let budget = server::config().resumption.map_or(0, |r| r.detached_memory);
    let growth_mib = seen.peak_rss_kib.saturating_sub(baseline_kib) / 1024;
    // Beyond the detached budget: the attached attackers' sessions (a few, each
    // with its buffers), allocator slack, and the runtime's threads.
    let allowed_mib = (budget >> 20) + 128;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "{runtime}: {} downloads dropped ({} MiB sent to them), {} handshakes dropped, {} token guesses ({} refused, {} rate-limited), {} attack errors",
        load(&tally.downloads),
        load(&tally.downloaded) >> 20,
        load(&tally.handshakes),
        load(&tally.guesses),
        load(&tally.refused),
        load(&tally.rate_limited),
        load(&tally.errors),
    );
    println!(
        "{runtime}: server rss {} MiB at start, peak {} MiB (+{growth_mib} MiB, allowed +{allowed_mib}); detached peak {} sessions holding {} MiB (budget {} MiB); {} sessions shed",
        baseline_kib / 1024,
        seen.peak_rss_kib / 1024,
        seen.peak_detached,
        seen.peak_held >> 20,
        budget >> 20,
        seen.shed,
    );
    println!(
        "{runtime}: legitimate client: {} link kills, {} resumes, {} MiB echoed and checked{}",
        outcome.kills,
        outcome.resumes,
        outcome.echoed >> 20,
        outcome
            .failure
            .as_ref()
            .map_or(String::new(), |f| format!(", FAILED: {f}"))
    );
    let mut ok = true;
    if seen.peak_held > budget {
        println!("{runtime}: FAIL: detached sessions held more than the budget");
        ok = false;
    }
    if growth_mib > allowed_mib {
        println!("{runtime}: FAIL: the server's resident set grew past the budget");
        ok = false;
    }
    if outcome.failure.is_some() || outcome.resumes + 1 < outcome.kills {
        println!("{runtime}: FAIL: the legitimate client did not get through");
        ok = false;
    }
    if load(&tally.guesses) > 120 && load(&tally.rate_limited) == 0 {
        println!("{runtime}: FAIL: token guessing was never rate limited");
        ok = false;
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--registry-scaling"] {
        scaling::run();
        return ExitCode::SUCCESS;
    }
    if let [flag, runtime] = &args[..] {
        if flag == "--serve" {
            return match server::run(runtime) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("server: {err}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    let flags = match parse(&args) {
        Ok(flags) => flags,
        Err(err) => {
            eprintln!("attack_soak: {err}\nusage: attack_soak [--runtime tokio|async-std|blocking|all] [--seconds N] | --registry-scaling");
            return ExitCode::from(2);
        }
    };
    let mut all_ok = true;
    for runtime in &flags.runtimes {
        match soak(runtime, flags.seconds) {
            Ok(ok) => all_ok &= ok,
            Err(err) => {
                eprintln!("attack_soak: {runtime}: {err}");
                all_ok = false;
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
