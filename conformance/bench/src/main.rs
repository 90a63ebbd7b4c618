//! hawser-bench: the same workloads, back to back in one process, on raw TCP,
//! hawser (tokio native, yamux profile and resumable; async-std; blocking), the
//! `yamux` crate (default and with a 256 KiB split size) and `tokio-yamux`, all
//! over loopback.
//!
//! ```text
//! cargo run --release -p hawser-bench                      # everything, a table
//! cargo run --release -p hawser-bench -- --quick --json    # small sizes, JSON lines
//! cargo run --release -p hawser-bench -- --workload rr --runtime current --quick
//! cargo run --release -p hawser-bench -- --workload open --impl hawser-tokio
//! cargo run --release -p hawser-bench -- --workload open-burst --impl hawser-tokio
//! cargo run --release -p hawser-bench -- --workload wan    # an emulated WAN; Linux, root
//! ```
//!
//! Each figure is the median of `--reps` repetitions (3 by default, 1 with
//! `--quick`), each over a fresh connection, with the minimum and maximum.

mod heap;
mod idle;
mod mux;
mod others;
mod procs;
mod sessions;
mod ssh;
mod tunnel;
#[cfg(target_os = "linux")]
mod wan;
mod workloads;

use std::future::Future;
use std::io;
use std::time::Duration;

use mux::TokioImpl;
use workloads::Figure;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// How much each workload moves.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub bulk_one: usize,
    pub bulk_hundred: usize,
    pub round_trips: usize,
    pub opens: usize,
    pub idle: usize,
    pub core: usize,
    /// Streams opened at once, in turn, by `open-burst`.
    pub bursts: &'static [usize],
    /// Bytes each of the 16 streams of `fairness` sends.
    pub fairness: usize,
    /// Round trips measured by `rr-under-load`, at most...
    pub loaded_round_trips: usize,
    /// ...and for at most this long.
    pub loaded_for: Duration,
    /// Sessions at once in `sessions`.
    pub sessions: usize,
    /// Bytes `tunnel` moves over one connection...
    pub tunnel_one: usize,
    /// ...and over each of 100: enough for the CPU figures, which count in
    /// the kernel's 10 ms ticks.
    pub tunnel_each: usize,
}

impl Sizes {
    fn full() -> Self {
        Sizes {
            bulk_one: 256 << 20,
            bulk_hundred: 4 << 20,
            round_trips: 20_000,
            opens: 10_016,
            idle: 10_000,
            core: 256 << 20,
            bursts: &[1_000, 10_000, 100_000],
            fairness: 16 << 20,
            loaded_round_trips: 5_000,
            loaded_for: Duration::from_secs(1),
            sessions: 1_000,
            tunnel_one: 1 << 30,
            tunnel_each: 10 << 20,
        }
    }

    fn quick() -> Self {
        Sizes {
            bulk_one: 16 << 20,
            bulk_hundred: 256 << 10,
            round_trips: 2_000,
            opens: 1_024,
            idle: 1_000,
            core: 32 << 20,
            bursts: &[1_000, 10_000],
            fairness: 1 << 20,
            loaded_round_trips: 500,
            loaded_for: Duration::from_millis(500),
            sessions: 100,
            tunnel_one: 256 << 20,
            tunnel_each: 2560 << 10,
        }
    }
}

const WORKLOADS: [&str; 12] = [
    "bulk-1",
    "bulk-100",
    "rr",
    "rr-under-load",
    "open",
    "open-burst",
    "fairness",
    "sessions",
    "idle",
    "core",
    "tunnel",
    // Only when asked for: it needs root and takes minutes.
    "wan",
];

struct Args {
    json: bool,
    quick: bool,
    workload: Option<String>,
    implementation: Option<String>,
    reps: usize,
    /// Whether `--reps` was given (else `sessions` runs once).
    reps_given: bool,
    multi_thread: bool,
    /// Overrides how much `bulk-1` and `core` move (for instruction counts).
    bytes: Option<usize>,
    /// Overrides how many round trips `rr` makes (for instruction counts).
    round_trips: Option<usize>,
}

impl Args {
    /// Whether `--impl` excludes `implementation`.
    fn skips(&self, implementation: &str) -> bool {
        self.implementation
            .as_deref()
            .is_some_and(|wanted| wanted != implementation)
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        json: false,
        quick: false,
        workload: None,
        implementation: None,
        reps: 0,
        reps_given: false,
        multi_thread: true,
        bytes: None,
        round_trips: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => args.json = true,
            "--quick" => args.quick = true,
            "--workload" => {
                let name = it.next().ok_or("--workload needs a name")?;
                if !WORKLOADS.contains(&name.as_str()) {
                    return Err(format!("unknown workload {name}; one of {}", WORKLOADS.join(", ")));
                }
                args.workload = Some(name);
            }
            "--impl" => args.implementation = Some(it.next().ok_or("--impl needs a name")?),
            "--reps" => {
                args.reps = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--reps needs a positive number")?
            }
            "--round-trips" => {
                args.round_trips = Some(
                    it.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--round-trips needs a positive number")?,
                )
            }
            "--bytes" => {
                args.bytes = Some(
                    it.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--bytes needs a positive number")?,
                )
            }
            "--runtime" => match it.next().as_deref() {
                Some("multi") => args.multi_thread = true,
                Some("current") => args.multi_thread = false,
                _ => return Err("--runtime takes multi or current".into()),
            },
            "--help" | "-h" => {
                return Err(
                    "usage: hawser-bench [--quick] [--json] [--workload NAME] [--impl NAME] [--reps N] [--runtime multi|current] [--bytes N] [--round-trips N]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    args.reps_given = args.reps > 0;
    if args.reps == 0 {
        args.reps = if args.quick { 1 } else { 3 };
    }
    Ok(args)
}

/// Every repetition of one (workload, implementation), gathered into medians.
struct Result_ {
    workload: &'static str,
    implementation: &'static str,
    figures: Vec<(&'static str, &'static str, Vec<f64>)>,
    error: Option<String>,
}

impl Result_ {
    fn new(workload: &'static str, implementation: &'static str) -> Self {
        Result_ {
            workload,
            implementation,
            figures: Vec::new(),
            error: None,
        }
    }

    fn add(&mut self, outcome: io::Result<Vec<Figure>>) {
        match outcome {
            Ok(figures) => {
                for figure in figures {
                    match self.figures.iter_mut().find(|(metric, _, _)| *metric == figure.metric) {
                        Some((_, _, values)) => values.push(figure.value),
                        None => self.figures.push((figure.metric, figure.unit, vec![figure.value])),
                    }
                }
            }
            Err(err) => self.error = Some(err.to_string()),
        }
    }
}

fn median(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    (sorted[sorted.len() / 2], sorted[0], sorted[sorted.len() - 1])
}

/// Bounds one repetition in time.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs one repetition in a spawned task, as application code usually runs: in
/// `block_on`'s own future, a wake from another task (a mux's driver) costs tokio's
/// current-thread scheduler an extra poll of the I/O driver, which would be
/// charged to every multiplexer and not to raw TCP.
fn run_tokio<F, Fut>(runtime: &tokio::runtime::Runtime, make: F) -> io::Result<Vec<Figure>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<Vec<Figure>>> + Send + 'static,
{
    let repetition = make();
    runtime.block_on(async {
        match tokio::spawn(tokio::time::timeout(LIMIT, repetition)).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(io::Error::new(io::ErrorKind::TimedOut, "repetition took over 60 s")),
            Err(join) => Err(io::Error::other(join)),
        }
    })
}

/// One repetition on a fresh runtime: nothing left over from the last.
fn on_fresh_runtime<F, Fut>(multi_thread: bool, make: F) -> io::Result<Vec<Figure>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<Vec<Figure>>> + Send + 'static,
{
    let runtime = build_runtime(multi_thread);
    let outcome = run_tokio(&runtime, make);
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome
}

fn main() -> std::process::ExitCode {
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        // Before this process sets up its own logging: the command does.
        Some("--hawser") => {
            return hawser_tunnel::command::main(std::iter::once("hawser".into()).chain(std::env::args_os().skip(2)))
        }
        Some("--relay-to") => tunnel::relay_main(raw),
        Some(side @ ("--idle-server" | "--idle-client")) => idle::child_main(side, raw),
        Some("--sessions-server") => sessions::server_main(raw),
        _ => {}
    }
    // RUST_LOG (e.g. `hawser_driver=debug`) shows what the sessions do, on stderr.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    };
    let mut sizes = if args.quick { Sizes::quick() } else { Sizes::full() };
    if let Some(round_trips) = args.round_trips {
        sizes.round_trips = round_trips;
    }
    if let Some(bytes) = args.bytes {
        sizes.bulk_one = bytes;
        sizes.core = bytes;
    }
    let mut results = Vec::new();
    if args.workload.as_deref() == Some("wan") {
        #[cfg(target_os = "linux")]
        wan::run(
            args.quick,
            if args.reps_given { args.reps } else { 1 },
            args.implementation.as_deref(),
        );
        #[cfg(not(target_os = "linux"))]
        println!("wan: skipped: the emulated path needs Linux");
        return std::process::ExitCode::SUCCESS;
    }
    for workload in WORKLOADS {
        if args.workload.as_deref().is_some_and(|w| w != workload) || workload == "wan" {
            continue;
        }
        if workload == "tunnel" {
            // Rounds of one repetition of each forwarder in turn: this
            // machine's CPU per GiB drifts over minutes, and a slow spell then
            // falls on every forwarder alike instead of on one of them.
            let mut tunnel_results: Vec<Result_> = tunnel::impls()
                .into_iter()
                .filter(|which| !args.skips(which))
                .map(|which| Result_::new("tunnel", which))
                .collect();
            for _ in 0..args.reps {
                for result in tunnel_results.iter_mut().filter(|result| result.error.is_none()) {
                    let which = result.implementation;
                    let sizes = sizes.clone();
                    result.add(on_fresh_runtime(args.multi_thread, || async move {
                        tunnel::run(which, &sizes).await
                    }));
                }
            }
            for result in tunnel_results {
                report(&args, &result);
                results.push(result);
            }
            continue;
        }
        if workload == "core" {
            if args.skips("hawser-core") {
                continue;
            }
            let mut result = Result_::new("core", "hawser-core");
            for _ in 0..args.reps {
                result.add(Ok(others::core_transfer(&sizes)));
            }
            report(&args, &result);
            results.push(result);
            continue;
        }
        for which in TokioImpl::ALL {
            if args.skips(which.name()) {
                continue;
            }
            if matches!(workload, "idle" | "open-burst" | "sessions") && which == TokioImpl::RawTcp {
                // Thousands of TCP connections measure the kernel, not a mux.
                continue;
            }
            let mut result = Result_::new(workload, which.name());
            // A thousand sessions take seconds, and the memory figures barely
            // move between repetitions: once, unless asked for more.
            let reps = if matches!(workload, "sessions" | "idle") && !args.reps_given {
                1
            } else {
                args.reps
            };
            for _ in 0..reps {
                if workload == "idle" {
                    result.add(idle::measure(which, sizes.idle, args.multi_thread));
                    if result.error.is_some() {
                        break;
                    }
                    continue;
                }
                let sizes = sizes.clone();
                let multi_thread = args.multi_thread;
                result.add(on_fresh_runtime(args.multi_thread, || async move {
                    match workload {
                        "bulk-1" => workloads::bulk_one(which, &sizes).await,
                        "bulk-100" => workloads::bulk_hundred(which, &sizes).await,
                        "rr" => workloads::request_response(which, &sizes).await,
                        "open" => workloads::open_close(which, &sizes).await,
                        "open-burst" => workloads::open_burst(which, &sizes).await,
                        "fairness" => workloads::fairness(which, &sizes).await,
                        "rr-under-load" => workloads::rr_under_load(which, &sizes).await,
                        "sessions" => sessions::measure(which, sizes.sessions, multi_thread).await,
                        _ => unreachable!("idle runs in child processes"),
                    }
                }));
                if result.error.is_some() {
                    break;
                }
            }
            report(&args, &result);
            results.push(result);
        }
        if workload == "bulk-1" || workload == "rr" {
            let rr = workload == "rr";
            for (name, hawser) in [("raw-std-net", false), ("hawser-blocking", true)] {
                if args.skips(name) {
                    continue;
                }
                let mut result = Result_::new(workload, name);
                for _ in 0..args.reps {
                    result.add(if rr {
                        others::blocking_request_response(hawser, &sizes)
                    } else {
                        others::blocking_bulk_one(hawser, &sizes)
                    });
                }
                report(&args, &result);
                results.push(result);
            }
            if args.skips("hawser-async-std") {
                continue;
            }
            let mut result = Result_::new(workload, "hawser-async-std");
            for _ in 0..args.reps {
                result.add(others::async_std_workload(rr, &sizes));
            }
            report(&args, &result);
            results.push(result);
        }
    }
    if !args.json {
        print_ratios(&results);
    }
    std::process::ExitCode::SUCCESS
}

pub fn build_runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("a tokio runtime")
}

fn report(args: &Args, result: &Result_) {
    if let Some(err) = &result.error {
        if args.json {
            println!(
                "{{\"workload\": \"{}\", \"impl\": \"{}\", \"error\": \"{}\"}}",
                result.workload,
                result.implementation,
                err.replace('"', "'")
            );
        } else {
            println!("{:<9} {:<22} failed: {err}", result.workload, result.implementation);
        }
        return;
    }
    for (metric, unit, values) in &result.figures {
        let (mid, min, max) = median(values);
        if args.json {
            println!(
                "{{\"workload\": \"{}\", \"impl\": \"{}\", \"metric\": \"{metric}\", \"value\": {mid:.3}, \"unit\": \"{unit}\", \"min\": {min:.3}, \"max\": {max:.3}}}",
                result.workload, result.implementation
            );
        } else {
            println!(
                "{:<9} {:<22} {metric:<10} {mid:>12.2} {unit:<12} (min {min:.2}, max {max:.2})",
                result.workload, result.implementation
            );
        }
    }
}

/// The lowest and highest of `a[i] / b[i]` over runs made side by side
/// (the same round), when there are two rounds or more.
fn spread_of_ratios(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let ratios = a.iter().zip(b).filter(|(_, b)| **b > 0.0).map(|(a, b)| a / b);
    ratios.fold(None, |range, ratio| match range {
        None => Some((ratio, ratio)),
        Some((low, high)) => Some((f64::min(low, ratio), f64::max(high, ratio))),
    })
}

/// The ratios the targets are stated in, from this run's medians.
fn print_ratios(results: &[Result_]) {
    let values = |workload: &str, implementation: &str, metric: &str| {
        results
            .iter()
            .find(|r| r.workload == workload && r.implementation == implementation && r.error.is_none())
            .and_then(|r| r.figures.iter().find(|(m, _, _)| *m == metric))
            .map(|(_, _, values)| values)
    };
    let get = |workload: &str, implementation: &str, metric: &str| {
        values(workload, implementation, metric).map(|values| median(values).0)
    };
    let ratio = |label: &str, a: Option<f64>, b: Option<f64>| {
        if let (Some(a), Some(b)) = (a, b) {
            println!("  {label:<48} {:.2}x", a / b);
        }
    };
    println!();
    println!("ratios (medians of this run):");
    // (workload, metric, hawser implementation, compared with, its metric)
    let targets = [
        ("bulk-1", "throughput", "hawser-tokio", "raw-tcp", "throughput"),
        ("bulk-1", "throughput", "hawser-tokio", "yamux", "throughput"),
        ("bulk-100", "throughput", "hawser-tokio", "raw-tcp", "throughput"),
        ("rr", "p50", "hawser-tokio", "raw-tcp", "p50"),
        ("rr", "p50", "hawser-tokio", "yamux", "p50"),
        ("open", "rate", "hawser-tokio", "yamux", "rate"),
        ("rr-under-load", "p99", "hawser-tokio", "yamux", "p99"),
        ("rr-under-load", "p99", "hawser-tokio", "tokio-yamux", "p99"),
        ("sessions", "p99-stream", "hawser-tokio", "yamux", "p99-stream"),
        ("sessions", "total", "hawser-tokio", "yamux", "total"),
        ("core", "throughput", "hawser-core", "hawser-core", "memcpy"),
        ("tunnel", "bulk-1", "relay-tcp", "direct-tcp", "bulk-1"),
        ("tunnel", "bulk-1", "tunnel-tls", "direct-tcp", "bulk-1"),
        ("tunnel", "bulk-1", "tunnel-plaintext", "direct-tcp", "bulk-1"),
        ("tunnel", "bulk-100", "relay-tcp", "direct-tcp", "bulk-100"),
        ("tunnel", "bulk-100", "tunnel-tls", "direct-tcp", "bulk-100"),
        ("tunnel", "bulk-100", "tunnel-plaintext", "direct-tcp", "bulk-100"),
        ("tunnel", "bulk-1", "tunnel-tls", "relay-tcp", "bulk-1"),
        ("tunnel", "bulk-1", "tunnel-plaintext", "relay-tcp", "bulk-1"),
        ("tunnel", "bulk-100", "tunnel-tls", "relay-tcp", "bulk-100"),
        ("tunnel", "bulk-100", "tunnel-plaintext", "relay-tcp", "bulk-100"),
        ("tunnel", "bulk-1", "tunnel-wss", "tunnel-tls", "bulk-1"),
        ("tunnel", "bulk-100", "tunnel-wss", "tunnel-tls", "bulk-100"),
        ("tunnel", "cpu-1", "tunnel-wss", "tunnel-tls", "cpu-1"),
        ("tunnel", "cpu-100", "tunnel-wss", "tunnel-tls", "cpu-100"),
        ("tunnel", "cpu-1", "tunnel-tls", "ssh-L", "cpu-1"),
        ("tunnel", "cpu-100", "tunnel-tls", "ssh-L", "cpu-100"),
        ("tunnel", "cpu-1", "tunnel-tls", "relay-tcp", "cpu-1"),
        ("tunnel", "cpu-1", "tunnel-plaintext", "relay-tcp", "cpu-1"),
        ("tunnel", "cpu-100", "tunnel-tls", "relay-tcp", "cpu-100"),
        ("tunnel", "cpu-100", "tunnel-plaintext", "relay-tcp", "cpu-100"),
    ];
    for (workload, metric, ours, theirs, their_metric) in targets {
        let label = if ours == theirs {
            format!("{workload} {ours} / {their_metric}")
        } else {
            format!("{workload} {metric} {ours} / {theirs}")
        };
        ratio(&label, get(workload, ours, metric), get(workload, theirs, their_metric));
        // The tunnel's forwarders run in rounds (see `main`): each round's
        // own ratio compares runs made minutes closer together than the
        // medians do, and their spread shows how far the machine drifted.
        if workload == "tunnel" && ours != theirs {
            if let (Some(a), Some(b)) = (values(workload, ours, metric), values(workload, theirs, their_metric)) {
                if let Some((low, high)) = spread_of_ratios(a, b) {
                    println!(
                        "  {:<48} {low:.2}x to {high:.2}x",
                        "  (each round's own, lowest to highest)"
                    );
                }
            }
        }
    }
    ratio(
        "open-burst rate at 100k / rate at 10k, hawser-tokio",
        get("open-burst", "hawser-tokio", "rate-100k"),
        get("open-burst", "hawser-tokio", "rate-10k"),
    );
    ratio(
        "rr-under-load p99 / idle rr p99, hawser-tokio",
        get("rr-under-load", "hawser-tokio", "p99"),
        get("rr", "hawser-tokio", "p99"),
    );
    if let Some(rss) = get("sessions", "hawser-tokio", "server-rss") {
        println!(
            "  {:<48} {rss:.0} bytes",
            "sessions hawser-tokio server memory per idle session"
        );
    }
    if let Some(heap) = get("sessions", "hawser-tokio", "server-heap") {
        println!(
            "  {:<48} {heap:.0} bytes",
            "sessions hawser-tokio server heap per idle session"
        );
    }
    if let Some(fair) = get("fairness", "hawser-tokio", "min/max") {
        println!("  {:<48} {fair:.2}", "fairness min/max, hawser-tokio");
    }
    for end in ["client", "server"] {
        if let Some(idle) = get("idle", "hawser-tokio", end) {
            println!(
                "  {:<48} {idle:.0} bytes",
                format!("idle hawser-tokio memory per stream, {end} end")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::spread_of_ratios;

    #[test]
    fn the_spread_pairs_runs_of_the_same_round() {
        // Round by round: 1/4, 3/5, 2/8.
        assert_eq!(spread_of_ratios(&[1.0, 3.0, 2.0], &[4.0, 5.0, 8.0]), Some((0.25, 0.6)));
        // One round, or rounds that do not line up, give no spread.
        assert_eq!(spread_of_ratios(&[1.0], &[2.0]), None);
        assert_eq!(spread_of_ratios(&[1.0, 2.0], &[2.0]), None);
    }
}
