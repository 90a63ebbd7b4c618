//! The simulator demo: two hawser-core sessions in one process, joined by the
//! deterministic simulator (20 ms round trip, 1 Gbit/s, the byte stream cut at
//! random points). Many streams carry checksummed data both ways at once; the
//! demo checks every byte and prints a short report.
//!
//! Run it with `cargo run --release -p hawser-examples --bin sim_demo`.

use std::process::ExitCode;
use std::time::{Duration, Instant as WallClock};

use bytes::Bytes;
use hawser_conformance::rng::Rng;
use hawser_conformance::sim::{Pair, Side, SimConfig};
use hawser_core::{Config, ReadError, StreamId};

const STREAMS: usize = 64;
const BYTES_PER_DIRECTION: usize = 1024 * 1024;

/// FNV-1a, enough to tell that the bytes that arrived are the bytes that were sent.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct Flow {
    id: StreamId,
    /// What each side sends: [client to server, server to client].
    data: [Bytes; 2],
    sent: [usize; 2],
    received: [Vec<u8>; 2],
    finished: [bool; 2],
    eof: [bool; 2],
    accepted: bool,
}

fn main() -> ExitCode {
    let sim = SimConfig {
        latency: Duration::from_millis(10),
        bandwidth: Some(125_000_000),
        max_chunk: Some(64 * 1024),
        seed: 7,
        send_queue: None,
    };
    let mut pair = Pair::new(Config::default(), Config::default(), sim);
    let mut rng = Rng::new(42);
    let mut flows: Vec<Flow> = (0..STREAMS)
        .map(|_| {
            let mut make = || {
                let mut data = vec![0u8; BYTES_PER_DIRECTION];
                rng.fill(&mut data);
                Bytes::from(data)
            };
            let data = [make(), make()];
            let id = pair.client.open(pair.now).expect("the default limits allow 64 streams");
            Flow {
                id,
                data,
                sent: [0; 2],
                received: [Vec::new(), Vec::new()],
                finished: [false; 2],
                eof: [false; 2],
                accepted: false,
            }
        })
        .collect();

    let wall = WallClock::now();
    let start = pair.now;
    let mut steps = 0u64;
    while !flows.iter().all(|f| f.eof == [true, true]) {
        while let Some(id) = pair.server.accept() {
            if let Some(flow) = flows.iter_mut().find(|f| f.id == id) {
                flow.accepted = true;
            }
        }
        for flow in &mut flows {
            for (index, side) in [Side::Client, Side::Server].into_iter().enumerate() {
                let incoming = 1 - index;
                let done = flow.finished[index] && flow.eof[incoming];
                if done || (side == Side::Server && !flow.accepted) {
                    continue;
                }
                let session = pair.session(side);
                let mut stream = session.stream(flow.id);
                if flow.sent[index] < flow.data[index].len() {
                    if let Ok(n) = stream.write(flow.data[index].slice(flow.sent[index]..)) {
                        flow.sent[index] += n;
                    }
                }
                if flow.sent[index] == flow.data[index].len() && !flow.finished[index] {
                    stream.finish().expect("finish a live stream");
                    flow.finished[index] = true;
                }
                // This side reads what the other side sent.
                loop {
                    match stream.read(usize::MAX) {
                        Ok(Some(chunk)) => flow.received[incoming].extend_from_slice(&chunk),
                        Ok(None) => {
                            flow.eof[incoming] = true;
                            break;
                        }
                        Err(ReadError::Blocked) => break,
                        Err(err) => {
                            eprintln!("stream {}: {err}", flow.id);
                            return ExitCode::FAILURE;
                        }
                    }
                }
            }
        }
        if !pair.step_within(Duration::from_millis(1)) {
            eprintln!("the simulation went idle before the transfer finished");
            return ExitCode::FAILURE;
        }
        steps += 1;
    }
    pair.drive();
    let simulated = pair.now.saturating_duration_since(start);
    let wall = wall.elapsed();

    let intact = flows
        .iter()
        .all(|f| (0..2).all(|i| checksum(&f.received[i]) == checksum(&f.data[i]) && f.received[i] == f.data[i]));
    let payload = (STREAMS * BYTES_PER_DIRECTION * 2) as f64;
    let client = pair.client.stats();
    let server = pair.server.stats();
    println!(
        "hawser sim_demo: {STREAMS} streams x {} KiB each way over a simulated link",
        BYTES_PER_DIRECTION / 1024
    );
    println!("  link: 20 ms round trip, 1 Gbit/s each way, byte stream cut at random points");
    println!(
        "  integrity: {}",
        if intact {
            "every byte arrived once, in order (checksums match)"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "  simulated time: {:.3} s   goodput: {:.1} MB/s (both directions)",
        simulated.as_secs_f64(),
        payload / simulated.as_secs_f64() / 1e6
    );
    println!(
        "  frames: {} out / {} in (client)   wire overhead: {:.2}%",
        client.frames_out,
        client.frames_in,
        100.0 * ((client.bytes_out + server.bytes_out) as f64 - payload) / payload
    );
    if let Some(rtt) = pair.client.rtt() {
        println!(
            "  smoothed RTT seen by the client: {:.1} ms",
            rtt.as_secs_f64() * 1000.0
        );
    }
    println!("  wall clock: {:.2} s for {steps} simulation steps", wall.as_secs_f64());
    if pair.client.stream_count() != 0 || pair.server.stream_count() != 0 {
        eprintln!("streams left open after the transfer");
        return ExitCode::FAILURE;
    }
    if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
