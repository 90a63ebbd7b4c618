//! Echo over hawser-async-std.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin echo_async_std -- --listen 127.0.0.1:7000
//! cargo run --release -p hawser-examples --bin echo_async_std -- --connect 127.0.0.1:7000 --streams 16 --bytes 4194304
//! ```

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use hawser_async_std::{Listener, Session, Stream};
use hawser_examples::{checksum, payload, report, Args};

async fn write_all(stream: &mut Stream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, data)).await?;
        data = &data[n..];
    }
    Ok(())
}

async fn read_some(stream: &mut Stream, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, buf)).await
}

async fn finish(stream: &mut Stream) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_close(cx)).await
}

async fn echo(mut stream: Stream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = read_some(&mut stream, &mut buf).await?;
        if n == 0 {
            return finish(&mut stream).await;
        }
        write_all(&mut stream, &buf[..n]).await?;
    }
}

/// Sends `payload(index, len)` and reads the echo back at the same time: a task
/// writes while this one reads, so neither direction waits on a window that only
/// the other can open.
async fn round_trip(session: hawser_async_std::Control, index: usize, len: usize) -> io::Result<bool> {
    let data = payload(index, len);
    let stream = session.open_stream().await?;
    let (mut reader, mut writer) = futures::io::AsyncReadExt::split(stream);
    let sent = data.clone();
    let sender = async_std::task::spawn(async move {
        futures::io::AsyncWriteExt::write_all(&mut writer, &sent).await?;
        futures::io::AsyncWriteExt::close(&mut writer).await
    });
    let mut back = Vec::with_capacity(len);
    futures::io::AsyncReadExt::read_to_end(&mut reader, &mut back).await?;
    sender.await?;
    Ok(checksum(&back) == checksum(&data) && back == data)
}

fn main() -> io::Result<()> {
    let args = Args::parse("echo_async_std");
    async_std::task::block_on(async {
        if let Some(addr) = args.listen {
            let listener = Listener::bind(addr, args.config()).await?;
            println!("echo_async_std: serving echo on {}", listener.local_addr()?);
            loop {
                let session = match listener.accept().await {
                    Ok((session, _peer)) => session,
                    Err(err) => {
                        // Out of file descriptors, for example: keep serving the rest.
                        eprintln!("echo_async_std: accept failed: {err}");
                        async_std::task::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                async_std::task::spawn(async move {
                    while let Some(stream) = session.accept().await {
                        async_std::task::spawn(echo(stream));
                    }
                });
            }
        }
        let addr = args
            .connect
            .expect("Args::parse guarantees one of --listen and --connect");
        let session = Session::connect(addr, args.config()).await?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..args.streams)
            .map(|index| async_std::task::spawn(round_trip(session.control(), index, args.bytes)))
            .collect();
        let mut ok = 0;
        for task in tasks {
            if task.await? {
                ok += 1;
            }
        }
        report(
            "echo_async_std",
            &args,
            ok,
            start.elapsed(),
            session.status().rtt_smoothed,
        );
        session.close(hawser_async_std::GoAwayCode::NORMAL);
        if ok == args.streams {
            Ok(())
        } else {
            Err(io::Error::other("some streams came back corrupted"))
        }
    })
}
