//! A plain TCP echo service, something for a tunnel to reach when trying it:
//! every connection gets back what it sends.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin tcp_echo -- --listen 127.0.0.1:5432
//! ```

use std::process::ExitCode;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, addr] = &args[..] else {
        eprintln!("usage: tcp_echo --listen ADDR");
        return ExitCode::from(2);
    };
    if flag != "--listen" {
        eprintln!("usage: tcp_echo --listen ADDR");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("tcp_echo: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("echoing on {addr}");
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (mut from, mut to) = tcp.into_split();
            if tokio::io::copy(&mut from, &mut to).await.is_ok() {
                let _ = to.shutdown().await;
            }
        });
    }
    ExitCode::SUCCESS
}
