//! The real `hawser` binary end to end on loopback: -L and -R through a proxy
//! that kills the link again and again, half-close, many connections at once.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PER_DIRECTION: u64 = 64 * 1024 * 1024;
const KILLS: u64 = 10;

/// Sends `bytes` of a pattern to `addr` and checks that all of it echoes back,
/// in order; counts checked bytes into `progress`.
async fn echo_through(addr: std::net::SocketAddr, seed: u64, bytes: u64, progress: Arc<AtomicU64>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut from, mut to) = tcp.into_split();
    let writing = async move {
        let mut pattern = Pattern::new(seed);
        while pattern.position() < bytes {
            let len = (64 * 1024).min(bytes - pattern.position()) as usize;
            to.write_all(&pattern.take(len)).await.unwrap();
        }
        to.shutdown().await.unwrap();
    };
    let reading = async move {
        let mut pattern = Pattern::new(seed);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.expect("no reset: nothing may be lost");
            if n == 0 {
                break;
            }
            pattern.check(&buf[..n]).unwrap();
            progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        assert_eq!(pattern.position(), bytes, "every byte came back, and no more");
    };
    tokio::join!(writing, reading);
}

/// A server, a client reaching it through a `KillProxy`, and a `-L` and a
/// `-R` forward to one echo service.
struct Forwarding {
    _server: Process,
    proxy: Arc<KillProxy>,
    client: Process,
    local_addr: std::net::SocketAddr,
    reverse_addr: std::net::SocketAddr,
}

async fn forwarding_through_proxy(name: &str) -> Forwarding {
    let dir = scratch(name);
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let reverse_port = free_port();
    let allow_reverse = reverse_port.to_string();
    let echo_text = echo.to_string();
    let (_server, server_addr) = server(&dir, &["--allow", &echo_text, "--allow-reverse", &allow_reverse]);
    let proxy = Arc::new(KillProxy::start(server_addr).unwrap());
    let local = format!("0:{echo}");
    let remote = format!("{reverse_port}:{echo}");
    let client = client(&dir, proxy.addr(), &fingerprint, &["-L", &local, "-R", &remote]);
    let local_addr = forwarded(&client);
    client.line("reverse ");
    Forwarding {
        _server,
        proxy,
        client,
        local_addr,
        reverse_addr: std::net::SocketAddr::from(([127, 0, 0, 1], reverse_port)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_reverse_forwards_survive_ten_link_kills() {
    let Forwarding {
        _server,
        proxy,
        client,
        local_addr,
        reverse_addr,
    } = forwarding_through_proxy("kills").await;

    let progress = Arc::new(AtomicU64::new(0));
    let total = 2 * PER_DIRECTION;
    let killer = {
        let (proxy, progress) = (proxy.clone(), progress.clone());
        tokio::spawn(async move {
            for kill in 1..=KILLS {
                while progress.load(Ordering::Relaxed) < total * kill / (KILLS + 1) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                proxy.kill_all();
            }
        })
    };
    let transfers = async {
        tokio::join!(
            echo_through(local_addr, 1, PER_DIRECTION, progress.clone()),
            echo_through(reverse_addr, 2, PER_DIRECTION, progress.clone()),
        )
    };
    tokio::time::timeout(Duration::from_secs(240), transfers)
        .await
        .expect("the transfers finished in time");
    killer.await.unwrap();
    assert!(proxy.kills() >= KILLS, "{} kills", proxy.kills());
    assert!(
        !client.stderr().contains("reconnecting"),
        "the session had to be rebuilt:\n{}",
        client.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_ride_through_a_path_that_goes_silent() {
    // The client's path goes silent mid-transfer and stays so, as when the
    // client moves to another network: the old connection neither ends nor
    // delivers. The client suspects it, dials a fresh link and resumes on it
    // long before keepalive would have declared the old one dead.
    let Forwarding {
        _server,
        proxy,
        client,
        local_addr,
        reverse_addr,
    } = forwarding_through_proxy("silent").await;

    const BYTES: u64 = 16 * 1024 * 1024;
    let progress = Arc::new(AtomicU64::new(0));
    let silencer = {
        let (proxy, progress) = (proxy.clone(), progress.clone());
        tokio::spawn(async move {
            while progress.load(Ordering::Relaxed) < 2 * BYTES / 3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            proxy.blackhole_all()
        })
    };
    let transfers = async {
        tokio::join!(
            echo_through(local_addr, 3, BYTES, progress.clone()),
            echo_through(reverse_addr, 4, BYTES, progress.clone()),
        )
    };
    tokio::time::timeout(Duration::from_secs(120), transfers)
        .await
        .expect("the transfers finished in time");
    assert_eq!(silencer.await.unwrap(), 1, "the link went silent mid-transfer");
    let log = client.stderr();
    assert!(log.contains("suspect link replaced by a fresh one"), "{log}");
    assert!(
        !log.contains("keepalive pings unanswered"),
        "keepalive had to notice:\n{log}"
    );
    assert!(!log.contains("reconnecting"), "the session had to be rebuilt:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_is_carried_both_ways_and_many_connections_run_at_once() {
    let dir = scratch("halfclose");
    let fingerprint = keygen(&dir);
    // Reads everything, then answers with how much it read, then closes.
    let counter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let counter_addr = counter.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = counter.accept().await {
            tokio::spawn(async move {
                let (got, _) = read_all(&mut tcp).await;
                let _ = tcp.write_all(format!("{}", got.len()).as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    // Speaks first and finishes its side, then counts what it is sent.
    let greeter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let greeter_addr = greeter.local_addr().unwrap();
    let (told_tx, mut told_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = greeter.accept().await {
            let told = told_tx.clone();
            tokio::spawn(async move {
                tcp.write_all(b"hello").await.unwrap();
                tcp.shutdown().await.unwrap();
                let (got, _) = read_all(&mut tcp).await;
                let _ = told.send(got.len());
            });
        }
    });
    let echo = echo_service().await;
    let allows = [counter_addr.to_string(), greeter_addr.to_string(), echo.to_string()];
    let (_server, server_addr) = server(
        &dir,
        &["--allow", &allows[0], "--allow", &allows[1], "--allow", &allows[2]],
    );
    let specs = allows.iter().map(|target| format!("0:{target}")).collect::<Vec<_>>();
    let client = client(
        &dir,
        server_addr,
        &fingerprint,
        &["-L", &specs[0], "-L", &specs[1], "-L", &specs[2]],
    );
    let mut locals = Vec::new();
    for _ in 0..3 {
        let line = client.line("forwarding ");
        let (local, target) = line.split_once(" -> ").unwrap();
        locals.push((target.to_string(), local.parse::<std::net::SocketAddr>().unwrap()));
    }
    let local_for = |target: &str| locals.iter().find(|(t, _)| t == target).unwrap().1;

    // The client finishes writing and still gets the answer.
    let mut tcp = TcpStream::connect(local_for(&allows[0])).await.unwrap();
    tcp.write_all(&[7u8; 100_000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let (answer, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok());
    assert_eq!(answer, b"100000");

    // The target finishes first, and still gets what the client sends after.
    let mut tcp = TcpStream::connect(local_for(&allows[1])).await.unwrap();
    let mut hello = [0u8; 5];
    tcp.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello, b"hello");
    let mut rest = [0u8; 1];
    assert_eq!(
        tcp.read(&mut rest).await.unwrap(),
        0,
        "the target's end of file came through"
    );
    tcp.write_all(&[1u8; 50_000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(told_rx.recv().await, Some(50_000));

    // 200 connections at once, 64 KiB each way.
    let echo_local = local_for(&allows[2]);
    let progress = Arc::new(AtomicU64::new(0));
    let all = (0..200).map(|seed| echo_through(echo_local, seed, 64 * 1024, progress.clone()));
    tokio::time::timeout(Duration::from_secs(60), futures_join_all(all))
        .await
        .expect("200 connections in time");
    assert_eq!(progress.load(Ordering::Relaxed), 200 * 64 * 1024);
}

/// Runs every future to the end, concurrently.
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    for task in tasks {
        task.await.unwrap();
    }
}
