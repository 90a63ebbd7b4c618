//! The server under attack: one adapter's resumable acceptor with the default
//! config, on 127.0.0.1 and ::1, reporting its acceptor stats and resident set.
//!
//! Each stream's first byte says what the server does with it: `D` sends a
//! download of [`DOWNLOAD`] bytes, `E` echoes until the client finishes.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use hawser_core::Config;

/// Bytes a `D` stream sends: more than the replay buffer and send buffer hold,
/// so that a client that never acknowledges leaves the server holding both full.
pub const DOWNLOAD: usize = 16 * 1024 * 1024;

pub fn config() -> Config {
    Config {
        resumption: Some(hawser_core::Resumption::default()),
        ..Config::default()
    }
}

/// Prints the two addresses, then a stats line every 200 ms, until killed.
pub fn run(runtime: &str) -> io::Result<()> {
    match runtime {
        "tokio" => run_tokio(),
        "async-std" => run_async_std(),
        "blocking" => run_blocking(),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown runtime {other}"),
        )),
    }
}

fn announce(v4: SocketAddr, v6: SocketAddr) {
    println!("listening {v4} {v6}");
    let _ = io::stdout().flush();
}

fn report(stats: hawser_blocking::AcceptorStats) {
    println!(
        "stats {} {} {} {} {} {} {} {}",
        stats.sessions,
        stats.detached,
        stats.detached_held,
        stats.shed,
        stats.refused,
        stats.rate_limited,
        crate::rss_kib(std::process::id()).unwrap_or(0),
        crate::proc_status(std::process::id(), "Threads:").unwrap_or(0)
    );
    let _ = io::stdout().flush();
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn run_tokio() -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let acceptor = hawser_tokio::Acceptor::<tokio::net::TcpStream>::new(config())?;
        let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let v6 = tokio::net::TcpListener::bind("[::1]:0").await?;
        announce(v4.local_addr()?, v6.local_addr()?);
        let chunk = bytes::Bytes::from(pattern(64 * 1024));
        for listener in [v4, v6] {
            let mut incoming = acceptor.serve(listener);
            let chunk = chunk.clone();
            tokio::spawn(async move {
                while let Some(session) = incoming.next().await {
                    let chunk = chunk.clone();
                    tokio::spawn(async move {
                        while let Some(mut stream) = session.accept().await {
                            let chunk = chunk.clone();
                            tokio::spawn(async move {
                                let mut what = [0u8; 1];
                                if stream.read_exact(&mut what).await.is_err() {
                                    return;
                                }
                                if what[0] == b'D' {
                                    for _ in 0..DOWNLOAD / chunk.len() {
                                        if stream.write_all(&chunk).await.is_err() {
                                            return;
                                        }
                                    }
                                    let _ = stream.shutdown().await;
                                } else {
                                    let (mut reader, mut writer) = tokio::io::split(stream);
                                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                                    let _ = writer.shutdown().await;
                                }
                            });
                        }
                    });
                }
            });
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            report(acceptor.stats());
        }
    })
}

fn run_async_std() -> io::Result<()> {
    use async_std::io::{ReadExt, WriteExt};
    use futures_io::AsyncWrite as _;
    async_std::task::block_on(async {
        let acceptor = hawser_async_std::Acceptor::<async_std::net::TcpStream>::new(config())?;
        let v4 = async_std::net::TcpListener::bind("127.0.0.1:0").await?;
        let v6 = async_std::net::TcpListener::bind("[::1]:0").await?;
        announce(v4.local_addr()?, v6.local_addr()?);
        let chunk = pattern(64 * 1024);
        for listener in [v4, v6] {
            let mut incoming = acceptor.serve(listener);
            let chunk = chunk.clone();
            async_std::task::spawn(async move {
                while let Some(session) = incoming.next().await {
                    let chunk = chunk.clone();
                    async_std::task::spawn(async move {
                        while let Some(mut stream) = session.accept().await {
                            let chunk = chunk.clone();
                            async_std::task::spawn(async move {
                                let mut what = [0u8; 1];
                                if stream.read_exact(&mut what).await.is_err() {
                                    return;
                                }
                                if what[0] == b'D' {
                                    for _ in 0..DOWNLOAD / chunk.len() {
                                        if stream.write_all(&chunk).await.is_err() {
                                            return;
                                        }
                                    }
                                    let _ =
                                        std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_close(cx)).await;
                                } else {
                                    let mut buf = vec![0u8; 64 * 1024];
                                    loop {
                                        match stream.read(&mut buf).await {
                                            Ok(0) | Err(_) => break,
                                            Ok(n) => {
                                                if stream.write_all(&buf[..n]).await.is_err() {
                                                    return;
                                                }
                                            }
                                        }
                                    }
                                    let _ =
                                        std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_close(cx)).await;
                                }
                            });
                        }
                    });
                }
            });
        }
        loop {
            async_std::task::sleep(Duration::from_millis(200)).await;
            report(acceptor.stats());
        }
    })
}

fn run_blocking() -> io::Result<()> {
    use std::io::{Read, Write};
    let acceptor = hawser_blocking::Acceptor::<std::net::TcpStream>::new(config())?;
    let v4 = std::net::TcpListener::bind("127.0.0.1:0")?;
    let v6 = std::net::TcpListener::bind("[::1]:0")?;
    announce(v4.local_addr()?, v6.local_addr()?);
    let chunk = pattern(64 * 1024);
    for listener in [v4, v6] {
        let incoming = acceptor.serve(listener);
        let chunk = chunk.clone();
        std::thread::spawn(move || {
            for session in incoming {
                let chunk = chunk.clone();
                std::thread::spawn(move || {
                    while let Some(mut stream) = session.accept() {
                        let chunk = chunk.clone();
                        std::thread::spawn(move || {
                            let mut what = [0u8; 1];
                            if stream.read_exact(&mut what).is_err() {
                                return;
                            }
                            if what[0] == b'D' {
                                for _ in 0..DOWNLOAD / chunk.len() {
                                    if stream.write_all(&chunk).is_err() {
                                        return;
                                    }
                                }
                                let _ = stream.finish();
                            } else {
                                let mut buf = vec![0u8; 64 * 1024];
                                loop {
                                    match stream.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => {
                                            if stream.write_all(&buf[..n]).is_err() {
                                                return;
                                            }
                                        }
                                    }
                                }
                                let _ = stream.finish();
                            }
                        });
                    }
                });
            }
        });
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        report(acceptor.stats());
    }
}
