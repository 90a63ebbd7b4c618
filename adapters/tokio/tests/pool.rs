//! The session pool on tokio: warm-up, spreading, the maximum, waiting opens,
//! eviction and replacement, failed dials, and counters that add up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_conformance::faults::KillProxy;
use hawser_tokio::{Config, Control, GoAwayCode, Listener, Pool, PoolConfig, PoolStats, PoolStream, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An echo server that keeps every session it accepted, for the test to look at.
async fn echo_server() -> (SocketAddr, Arc<Mutex<Vec<Control>>>) {
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let kept = sessions.clone();
    tokio::spawn(async move {
        while let Ok((session, _)) = listener.accept().await {
            kept.lock().unwrap().push(session.control());
            tokio::spawn(async move {
                while let Some(stream) = session.accept().await {
                    tokio::spawn(async move {
                        let (mut from, mut to) = tokio::io::split(stream);
                        tokio::io::copy(&mut from, &mut to).await?;
                        to.shutdown().await
                    });
                }
            });
        }
    });
    (addr, sessions)
}

fn config(min: usize, max: usize, per_session: usize) -> PoolConfig {
    PoolConfig {
        min_sessions: min,
        max_sessions: max,
        streams_per_session: per_session,
        open_timeout: Duration::from_millis(300),
        initial_dial_backoff: Duration::from_millis(20),
        max_dial_backoff: Duration::from_millis(100),
        ..PoolConfig::default()
    }
}

fn pool_to(addr: SocketAddr, config: PoolConfig) -> Pool {
    Pool::new(config, move || Session::connect(addr, Config::default())).unwrap()
}

async fn echo(stream: &mut PoolStream, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, message);
}

/// Waits (bounded) until `done` holds of the pool's counters.
async fn until(pool: &Pool, what: &str, done: impl Fn(&PoolStats) -> bool) {
    for _ in 0..500 {
        if done(&pool.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened; stats {:?}", pool.stats());
}

fn add_up(stats: &PoolStats) {
    assert_eq!(
        stats.dialled,
        (stats.live as u64) + stats.evicted + stats.trimmed,
        "every dialled session is live, evicted or trimmed: {stats:?}"
    );
}

#[tokio::test]
async fn warmup_dials_min_sessions() {
    let (addr, server) = echo_server().await;
    let pool = pool_to(addr, config(3, 5, 8));
    tokio::time::timeout(Duration::from_secs(10), pool.warmup())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pool.stats().live, 3);
    until(&pool, "the server sees three sessions", |_| {
        server.lock().unwrap().len() == 3
    })
    .await;
    add_up(&pool.stats());
}

#[tokio::test]
async fn streams_spread_over_sessions_and_the_maximum_holds() {
    let (addr, server) = echo_server().await;
    let pool = pool_to(addr, config(1, 3, 2));
    pool.warmup().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(pool.open_stream().await.unwrap());
    }
    let stats = pool.stats();
    assert_eq!((stats.live, stats.streams_held, stats.streams_opened), (3, 6, 6));
    // Two streams on each session, as the server sees them once they arrive.
    for stream in &mut held {
        stream.write_all(b"x").await.unwrap();
    }
    until(&pool, "each server session holds two streams", |_| {
        let sessions = server.lock().unwrap();
        sessions.len() == 3 && sessions.iter().all(|s| s.status().streams_open == 2)
    })
    .await;

    // Full and at the maximum: the next open waits, then times out.
    let err = pool.open_stream().await.expect_err("no room anywhere");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(pool.stats().open_timeouts, 1);
    assert_eq!(server.lock().unwrap().len(), 3, "never more than max_sessions");

    // A waiting open gets the place a dropped stream leaves.
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut stream = pool.open_stream().await.unwrap();
            echo(&mut stream, b"after a wait").await;
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    let stats = pool.stats();
    assert_eq!(stats.opens_waited, 4, "two for dials, the timeout, the wait: {stats:?}");
    assert!(stats.wait_longest >= Duration::from_millis(300), "{stats:?}");
    add_up(&stats);
}

#[tokio::test]
async fn killed_sessions_are_evicted_and_replaced_while_opens_go_on() {
    let (addr, _server) = echo_server().await;
    let proxy = KillProxy::start(addr).unwrap();
    let pool = pool_to(proxy.addr(), config(2, 4, 64));
    pool.warmup().await.unwrap();
    for round in 1..=5u64 {
        let mut stream = pool.open_stream().await.unwrap();
        echo(&mut stream, format!("round {round}").as_bytes()).await;
        drop(stream);
        kill_both(&proxy).await;
        until(&pool, "the killed sessions are evicted and replaced", |stats| {
            stats.evicted == 2 * round && stats.live == 2
        })
        .await;
        // The replacements carry streams at once.
        let mut streams = Vec::new();
        for _ in 0..10 {
            streams.push(pool.open_stream().await.unwrap());
        }
        for (at, stream) in streams.iter_mut().enumerate() {
            echo(stream, format!("round {round} stream {at}").as_bytes()).await;
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.dialled, 12);
    assert_eq!(stats.streams_opened, 55);
    add_up(&stats);
}

#[tokio::test]
async fn a_session_that_goes_away_is_taken_out_and_replaced() {
    let (addr, server) = echo_server().await;
    let pool = pool_to(addr, config(1, 2, 8));
    pool.warmup().await.unwrap();
    until(&pool, "the server has the session", |_| {
        server.lock().unwrap().len() == 1
    })
    .await;
    server.lock().unwrap()[0].go_away(GoAwayCode::NORMAL).unwrap();
    until(&pool, "the draining session is replaced", |stats| {
        stats.evicted == 1 && stats.live == 1
    })
    .await;
    let mut stream = pool.open_stream().await.unwrap();
    echo(&mut stream, b"on the replacement").await;
    assert_eq!(server.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_dial_that_fails_is_reported_and_retried() {
    // A port nothing listens on (bound, then closed).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = pool_to(addr, config(1, 2, 8));
    let err = pool.warmup().await.expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let err = pool.open_stream().await.expect_err("still nothing");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    until(&pool, "dials go on with backoff", |stats| stats.dial_failures >= 3).await;
    assert_eq!(pool.stats().live, 0);
}

#[tokio::test]
async fn idle_sessions_beyond_the_minimum_are_closed() {
    let (addr, _server) = echo_server().await;
    let pool = pool_to(
        addr,
        PoolConfig {
            idle_timeout: Duration::from_millis(100),
            ..config(1, 3, 1)
        },
    );
    let streams: Vec<PoolStream> = open_many(&pool, 3).await;
    assert_eq!(pool.stats().live, 3);
    drop(streams);
    until(&pool, "two idle sessions trimmed", |stats| {
        stats.trimmed == 2 && stats.live == 1
    })
    .await;
    add_up(&pool.stats());
}

async fn open_many(pool: &Pool, n: usize) -> Vec<PoolStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        streams.push(pool.open_stream().await.unwrap());
    }
    streams
}

#[tokio::test]
async fn a_cancelled_open_leaves_nothing_reserved() {
    let (addr, _server) = echo_server().await;
    let pool = pool_to(addr, config(1, 1, 1));
    pool.warmup().await.unwrap();
    let held = pool.open_stream().await.unwrap();
    for _ in 0..20 {
        // Cut short while it waits for room.
        let cut = tokio::time::timeout(Duration::from_millis(5), pool.open_stream()).await;
        assert!(cut.is_err());
    }
    assert_eq!(pool.stats().streams_held, 1);
    drop(held);
    let mut stream = pool.open_stream().await.unwrap();
    echo(&mut stream, b"still one place").await;
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.kill_all(), 2, "the pool's two links");
}
