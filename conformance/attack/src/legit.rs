//! The legitimate client: a resumable hawser-tokio session from another source
//! (::1) echoing data through the server while its link is killed every second.
//! It must resume every time and get every byte back, in order, while the
//! budgets shed the attackers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_tokio::{RetryPolicy, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the legitimate client saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Links killed under it.
    pub kills: u64,
    /// Resumes its session made.
    pub resumes: u64,
    /// Bytes echoed back and checked.
    pub echoed: u64,
    /// What went wrong, if anything did.
    pub failure: Option<String>,
}

pub fn run(addr: SocketAddr, stop: Arc<AtomicBool>) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return Outcome {
                failure: Some(format!("no runtime: {err}")),
                ..Outcome::default()
            }
        }
    };
    runtime.block_on(echo_while_killed(addr, stop))
}

async fn echo_while_killed(addr: SocketAddr, stop: Arc<AtomicBool>) -> Outcome {
    let mut outcome = Outcome::default();
    // A clone of each link's socket, to kill it from outside.
    let current: Arc<Mutex<Option<std::net::TcpStream>>> = Arc::default();
    let dial_current = current.clone();
    let dial = move || {
        let current = dial_current.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let std = tcp.into_std()?;
            *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(std.try_clone()?);
            tokio::net::TcpStream::from_std(std)
        }
    };
    let session = match Session::connect_resumable_with(dial, crate::server::config(), RetryPolicy::default()).await {
        Ok(session) => session,
        Err(err) => {
            outcome.failure = Some(format!("connect: {err}"));
            return outcome;
        }
    };
    let stream = match session.open_stream().await {
        Ok(stream) => stream,
        Err(err) => {
            outcome.failure = Some(format!("open: {err}"));
            return outcome;
        }
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    if let Err(err) = writer.write_all(b"E").await {
        outcome.failure = Some(format!("write: {err}"));
        return outcome;
    }
    let chunk: Vec<u8> = (0..16 * 1024).map(|i| (i * 7 % 253) as u8).collect();
    let mut back = vec![0u8; chunk.len()];
    let mut last_kill = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_kill.elapsed() >= Duration::from_secs(1) {
            if let Some(tcp) = current.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                outcome.kills += 1;
            }
            last_kill = tokio::time::Instant::now();
        }
        let round = async {
            writer.write_all(&chunk).await?;
            reader.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(20), round).await {
            Ok(Ok(())) if back == chunk => outcome.echoed += chunk.len() as u64,
            Ok(Ok(())) => {
                outcome.failure = Some(format!("echo mismatch after {} bytes", outcome.echoed));
                break;
            }
            Ok(Err(err)) => {
                outcome.failure = Some(format!("echo failed after {} bytes: {err}", outcome.echoed));
                break;
            }
            Err(_) => {
                outcome.failure = Some(format!("echo stalled for 20 s after {} bytes", outcome.echoed));
                break;
            }
        }
    }
    outcome.resumes = session.stats().resumes;
    session.close(hawser_core::GoAwayCode::NORMAL);
    outcome
}
