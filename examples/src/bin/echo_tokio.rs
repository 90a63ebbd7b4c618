//! Echo over hawser-tokio.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin echo_tokio -- --listen 127.0.0.1:7000
//! cargo run --release -p hawser-examples --bin echo_tokio -- --connect 127.0.0.1:7000 --streams 16 --bytes 4194304
//! ```

use std::io;
use std::time::Instant;

use hawser_examples::{report, Args};
use hawser_tokio::{Listener, Session};
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = Args::parse("echo_tokio");
    if let Some(addr) = args.listen {
        let listener = Listener::bind(addr, args.config()).await?;
        println!("echo_tokio: serving echo on {}", listener.local_addr()?);
        loop {
            let session = match listener.accept().await {
                Ok((session, _peer)) => session,
                Err(err) => {
                    // Out of file descriptors, for example: keep serving the rest.
                    eprintln!("echo_tokio: accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                while let Some(mut stream) = session.accept().await {
                    tokio::spawn(async move {
                        let (mut reader, mut writer) = tokio::io::split(&mut stream);
                        if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                            let _ = writer.shutdown().await;
                        }
                    });
                }
            });
        }
    }
    let addr = args
        .connect
        .expect("Args::parse guarantees one of --listen and --connect");
    let session = Session::connect(addr, args.config()).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..args.streams {
        let control = session.control();
        let len = args.bytes;
        tasks.push(tokio::spawn(hawser_examples::tokio_round_trip(control, index, len)));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.map_err(io::Error::other)?? {
            ok += 1;
        }
    }
    report("echo_tokio", &args, ok, start.elapsed(), session.status().rtt_smoothed);
    session.close(hawser_tokio::GoAwayCode::NORMAL);
    if ok == args.streams {
        Ok(())
    } else {
        Err(io::Error::other("some streams came back corrupted"))
    }
}
