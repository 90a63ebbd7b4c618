//! The session pool on async-std: the policy is hawser-driver's (tested there
//! with fake sessions, and end to end in hawser-tokio); here, that it runs on
//! async-std tasks and timers: warm-up, spreading, the maximum, eviction and
//! replacement of killed sessions, and a failed dial.
#![cfg(feature = "async-std")]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use hawser_async_std::{Config, Listener, Pool, PoolConfig, PoolStats, PoolStream, Session};
use hawser_conformance::faults::KillProxy;

async fn echo_server() -> SocketAddr {
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    async_std::task::spawn(async move {
        while let Ok((session, _)) = listener.accept().await {
            async_std::task::spawn(async move {
                while let Some(stream) = session.accept().await {
                    async_std::task::spawn(async move {
                        let (from, mut to) = stream.split();
                        futures::io::copy(from, &mut to).await?;
                        to.close().await
                    });
                }
            });
        }
    });
    addr
}

fn pool_to(addr: SocketAddr, min: usize, max: usize, per_session: usize) -> Pool {
    let config = PoolConfig {
        min_sessions: min,
        max_sessions: max,
        streams_per_session: per_session,
        open_timeout: Duration::from_millis(200),
        initial_dial_backoff: Duration::from_millis(20),
        ..PoolConfig::default()
    };
    Pool::new(config, move || Session::connect(addr, Config::default())).unwrap()
}

async fn echo(stream: &mut PoolStream, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    stream.close().await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, message);
}

async fn until(pool: &Pool, what: &str, done: impl Fn(&PoolStats) -> bool) {
    for _ in 0..500 {
        if done(&pool.stats()) {
            return;
        }
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened; stats {:?}", pool.stats());
}

fn run(test: impl std::future::Future<Output = ()>) {
    async_std::task::block_on(async {
        async_std::future::timeout(Duration::from_secs(60), test)
            .await
            .expect("the test finished in time")
    });
}

#[test]
fn streams_spread_over_sessions_up_to_the_maximum() {
    run(async {
        let pool = pool_to(echo_server().await, 2, 3, 2);
        pool.warmup().await.unwrap();
        assert_eq!(pool.stats().live, 2);
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(pool.open_stream().await.unwrap());
        }
        let err = pool.open_stream().await.expect_err("no room anywhere");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let stats = pool.stats();
        assert_eq!((stats.live, stats.streams_held, stats.open_timeouts), (3, 6, 1));
        for (at, stream) in held.iter_mut().enumerate() {
            echo(stream, format!("stream {at}").as_bytes()).await;
        }
    });
}

#[test]
fn killed_sessions_are_evicted_and_replaced() {
    run(async {
        let proxy = KillProxy::start(echo_server().await).unwrap();
        let pool = pool_to(proxy.addr(), 2, 4, 64);
        pool.warmup().await.unwrap();
        for round in 1..=3u64 {
            kill_both(&proxy).await;
            until(&pool, "the killed sessions are replaced", |stats| {
                stats.evicted == 2 * round && stats.live == 2
            })
            .await;
            let mut stream = pool.open_stream().await.unwrap();
            echo(&mut stream, format!("round {round}").as_bytes()).await;
        }
        let stats = pool.stats();
        assert_eq!(stats.dialled, (stats.live as u64) + stats.evicted + stats.trimmed);
    });
}

#[test]
fn a_dial_that_fails_is_reported() {
    run(async {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let pool = pool_to(addr, 1, 2, 8);
        let err = pool.warmup().await.expect_err("nothing listens");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    });
}

/// Kills the pool's two links. The proxy registers a link only once it has
/// dialled the server for it, a moment after the client's connect returned, so
/// a new link may not be there to kill at once.
async fn kill_both(proxy: &KillProxy) {
    // Both at once: killing one and then the other lets the pool replace the
    // first in between, and the second kill would cut its replacement too.
    for _ in 0..500 {
        if proxy.open_connections() >= 2 {
            break;
        }
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.kill_all(), 2, "the pool's two links");
}
