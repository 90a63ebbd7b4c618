//! Shared pieces of the hawser examples: command-line flags, payloads, checksums.

use std::net::SocketAddr;
use std::process::exit;

use hawser_core::{Config, Profile};

/// Flags every echo example takes.
#[derive(Clone, Debug)]
pub struct Args {
    /// `--listen ADDR`: serve echo on this address.
    pub listen: Option<SocketAddr>,
    /// `--connect ADDR`: run the client against this address.
    pub connect: Option<SocketAddr>,
    /// `--profile native|yamux`.
    pub profile: Profile,
    /// `--streams N`: concurrent streams the client opens.
    pub streams: usize,
    /// `--bytes N`: bytes each stream sends (and reads back).
    pub bytes: usize,
}

impl Args {
    /// Parses the process arguments, exiting with a usage message on error.
    pub fn parse(program: &str) -> Args {
        let mut args = Args {
            listen: None,
            connect: None,
            profile: Profile::Native,
            streams: 8,
            bytes: 1 << 20,
        };
        let mut iter = std::env::args().skip(1);
        while let Some(flag) = iter.next() {
            let value = iter
                .next()
                .unwrap_or_else(|| usage(program, &format!("{flag} needs a value")));
            match flag.as_str() {
                "--listen" => args.listen = Some(parse_value(program, &flag, &value)),
                "--connect" => args.connect = Some(parse_value(program, &flag, &value)),
                "--profile" => {
                    args.profile = match value.as_str() {
                        "native" => Profile::Native,
                        "yamux" => Profile::Yamux,
                        other => usage(program, &format!("unknown profile {other}")),
                    }
                }
                "--streams" => args.streams = parse_value(program, &flag, &value),
                "--bytes" => args.bytes = parse_value(program, &flag, &value),
                other => usage(program, &format!("unknown flag {other}")),
            }
        }
        if args.listen.is_none() == args.connect.is_none() {
            usage(program, "give exactly one of --listen and --connect");
        }
        args
    }

    /// The session configuration for the chosen profile.
    pub fn config(&self) -> Config {
        match self.profile {
            Profile::Native => Config::default(),
            Profile::Yamux => Config::yamux(),
        }
    }
}

fn parse_value<T: std::str::FromStr>(program: &str, flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(program, &format!("bad value {value:?} for {flag}")))
}

fn usage(program: &str, problem: &str) -> ! {
    eprintln!("{program}: {problem}");
    eprintln!("usage: {program} (--listen ADDR | --connect ADDR) [--profile native|yamux] [--streams N] [--bytes N]");
    exit(2)
}

/// A deterministic payload for stream `index`.
pub fn payload(index: usize, len: usize) -> Vec<u8> {
    let mut rng = hawser_conformance::rng::Rng::new(index as u64 + 1);
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    data
}

/// FNV-1a: enough to tell that what came back is what was sent.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Prints the client's summary line.
pub fn report(runtime: &str, args: &Args, ok: usize, elapsed: std::time::Duration, rtt: Option<std::time::Duration>) {
    let moved = (args.streams * args.bytes * 2) as f64;
    println!(
        "{runtime}: {ok}/{} streams echoed {} bytes each intact in {:.3} s ({:.1} MB/s both ways){}",
        args.streams,
        args.bytes,
        elapsed.as_secs_f64(),
        moved / elapsed.as_secs_f64() / 1e6,
        rtt.map(|rtt| format!(", RTT {:.3} ms", rtt.as_secs_f64() * 1000.0))
            .unwrap_or_default()
    );
}

/// Sends `data` on a blocking stream and reads the echo back at the same time: a
/// thread writes while the caller reads, so neither direction waits on a window
/// that only the other can open.
pub fn blocking_round_trip(stream: hawser_blocking::Stream, data: Vec<u8>) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    use std::io::{Read, Write};
    let (mut reader, mut writer) = stream.split();
    let sender = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        writer.write_all(&data)?;
        writer.finish()?;
        Ok(data)
    });
    let mut back = Vec::new();
    let read = reader.read_to_end(&mut back);
    let sent = sender
        .join()
        .map_err(|_| std::io::Error::other("the writer thread panicked"))??;
    read?;
    Ok((sent, back))
}

/// Opens a stream on a tokio session, sends `payload(index, len)` and reads the
/// echo back concurrently; true when it came back intact.
pub async fn tokio_round_trip(control: hawser_tokio::Control, index: usize, len: usize) -> std::io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = payload(index, len);
    let stream = control.open_stream().await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let sent = data.clone();
    let send = tokio::spawn(async move {
        writer.write_all(&sent).await?;
        writer.shutdown().await
    });
    let mut back = Vec::with_capacity(len);
    reader.read_to_end(&mut back).await?;
    send.await.map_err(std::io::Error::other)??;
    Ok(back.len() == data.len() && checksum(&back) == checksum(&data) && back == data)
}

/// The README's code blocks, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
