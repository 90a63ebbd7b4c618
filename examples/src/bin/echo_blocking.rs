//! Echo over hawser-blocking, with a thread per stream.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin echo_blocking -- --listen 127.0.0.1:7000
//! cargo run --release -p hawser-examples --bin echo_blocking -- --connect 127.0.0.1:7000 --streams 16 --bytes 1048576
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use hawser_blocking::Session;
use hawser_examples::{blocking_round_trip, checksum, payload, report, Args};

fn main() -> io::Result<()> {
    let args = Args::parse("echo_blocking");
    if let Some(addr) = args.listen {
        let listener = TcpListener::bind(addr)?;
        println!("echo_blocking: serving echo on {}", listener.local_addr()?);
        for tcp in listener.incoming() {
            let session = Session::server(tcp?, args.config())?;
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
        return Ok(());
    }
    let addr = args
        .connect
        .expect("Args::parse guarantees one of --listen and --connect");
    let session = Session::client(TcpStream::connect(addr)?, args.config())?;
    let start = Instant::now();
    let mut workers = Vec::new();
    for index in 0..args.streams {
        let mut stream = session.open_stream()?;
        let len = args.bytes;
        workers.push(thread::spawn(move || -> io::Result<bool> {
            let data = payload(index, len);
            let back = blocking_round_trip(&mut stream, &data)?;
            Ok(checksum(&back) == checksum(&data) && back == data)
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
    report("echo_blocking", &args, ok, start.elapsed(), session.health().rtt);
    session.close(hawser_blocking::GoAwayCode::NORMAL);
    if ok == args.streams {
        Ok(())
    } else {
        Err(io::Error::other("some streams came back corrupted"))
    }
}
