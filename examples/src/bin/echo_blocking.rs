//! Echo over hawser-blocking, with a thread per stream.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin echo_blocking -- --listen 127.0.0.1:7000
//! cargo run --release -p hawser-examples --bin echo_blocking -- --connect 127.0.0.1:7000 --streams 16 --bytes 4194304
//! ```

use std::io::{self, Read, Write};
use std::thread;
use std::time::Instant;

use hawser_blocking::{Listener, Session};
use hawser_examples::{blocking_round_trip, checksum, payload, report, Args};

fn main() -> io::Result<()> {
    let args = Args::parse("echo_blocking");
    if let Some(addr) = args.listen {
        let listener = Listener::bind(addr, args.config())?;
        println!("echo_blocking: serving echo on {}", listener.local_addr()?);
        loop {
            let session = match listener.accept() {
                Ok((session, _peer)) => session,
                Err(err) => {
                    // Out of file descriptors, for example: keep serving the rest.
                    eprintln!("echo_blocking: accept failed: {err}");
                    thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            thread::spawn(move || {
                while let Some(mut stream) = session.accept() {
                    thread::spawn(move || -> io::Result<()> {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = stream.read(&mut buf)?;
                            if n == 0 {
                                return stream.finish();
                            }
                            stream.write_all(&buf[..n])?;
                        }
                    });
                }
            });
        }
    }
    let addr = args
        .connect
        .expect("Args::parse guarantees one of --listen and --connect");
    let session = Session::connect(addr, args.config())?;
    let start = Instant::now();
    let mut workers = Vec::new();
    for index in 0..args.streams {
        let stream = session.open_stream()?;
        let len = args.bytes;
        workers.push(thread::spawn(move || -> io::Result<bool> {
            let (sent, back) = blocking_round_trip(stream, payload(index, len))?;
            Ok(checksum(&back) == checksum(&sent) && back == sent)
        }));
    }
    let mut ok = 0;
    for worker in workers {
        if worker
            .join()
            .map_err(|_| io::Error::other("a stream thread panicked"))??
        {
            ok += 1;
        }
    }
    report(
        "echo_blocking",
        &args,
        ok,
        start.elapsed(),
        session.status().rtt_smoothed,
    );
    session.close(hawser_blocking::GoAwayCode::NORMAL);
    if ok == args.streams {
        Ok(())
    } else {
        Err(io::Error::other("some streams came back corrupted"))
    }
}
