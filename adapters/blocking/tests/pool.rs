//! The session pool for threads: warm-up, spreading and the maximum, waiting
//! opens and their timeout, eviction and replacement, failed dials, and idle
//! trimming, with counters that add up.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hawser_blocking::{Config, ControlCore, GoAwayCode, Listener, Pool, PoolConfig, PoolStats, PoolStream, Session};

/// An echo server that keeps a control handle of every session it accepted.
fn echo_server() -> (SocketAddr, Arc<Mutex<Vec<ControlCore>>>) {
    let listener = Listener::bind("127.0.0.1:0", Config::default()).unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let kept = sessions.clone();
    thread::spawn(move || {
        while let Ok((session, _)) = listener.accept() {
            kept.lock().unwrap().push((*session).clone());
            thread::spawn(move || {
                while let Some(stream) = session.accept() {
                    let (mut from, mut to) = stream.split();
                    thread::spawn(move || {
                        std::io::copy(&mut from, &mut to)?;
                        to.finish()
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

fn echo(stream: &mut PoolStream, message: &[u8]) {
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream.write_all(message).unwrap();
    stream.finish().unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, message);
}

/// Waits (bounded) until `done` holds of the pool's counters.
fn until(pool: &Pool, what: &str, done: impl Fn(&PoolStats) -> bool) {
    for _ in 0..500 {
        if done(&pool.stats()) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
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

#[test]
fn streams_spread_over_sessions_and_the_maximum_holds() {
    let (addr, server) = echo_server();
    let pool = pool_to(addr, config(1, 3, 2));
    pool.warmup().unwrap();
    assert_eq!(pool.stats().live, 1);
    let mut held: Vec<PoolStream> = (0..6).map(|_| pool.open_stream().unwrap()).collect();
    let stats = pool.stats();
    assert_eq!((stats.live, stats.streams_held, stats.streams_opened), (3, 6, 6));
    for stream in &mut held {
        stream.write_all(b"x").unwrap();
    }
    until(&pool, "each server session holds two streams", |_| {
        let sessions = server.lock().unwrap();
        sessions.len() == 3 && sessions.iter().all(|s| s.status().streams_open == 2)
    });

    // Full and at the maximum: the next open waits, then times out.
    let err = pool.open_stream().expect_err("no room anywhere");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(pool.stats().open_timeouts, 1);
    assert_eq!(server.lock().unwrap().len(), 3, "never more than max_sessions");

    // A waiting open gets the place a dropped stream leaves.
    let waiting = thread::spawn({
        let pool = pool.clone();
        move || {
            let mut stream = pool.open_stream().unwrap();
            echo(&mut stream, b"after a wait");
        }
    });
    thread::sleep(Duration::from_millis(50));
    drop(held.pop());
    waiting.join().unwrap();
    let stats = pool.stats();
    assert!(stats.wait_longest >= Duration::from_millis(300), "{stats:?}");
    add_up(&stats);
}

#[test]
fn a_session_that_goes_away_is_taken_out_and_replaced() {
    let (addr, server) = echo_server();
    let pool = pool_to(addr, config(1, 2, 8));
    pool.warmup().unwrap();
    until(&pool, "the server has the session", |_| {
        server.lock().unwrap().len() == 1
    });
    server.lock().unwrap()[0].go_away(GoAwayCode::NORMAL).unwrap();
    until(&pool, "the draining session is replaced", |stats| {
        stats.evicted == 1 && stats.live == 1
    });
    let mut stream = pool.open_stream().unwrap();
    echo(&mut stream, b"on the replacement");
    assert_eq!(server.lock().unwrap().len(), 2);
    add_up(&pool.stats());
}

#[test]
fn a_dial_that_fails_is_reported_and_retried() {
    // A port nothing listens on (bound, then closed).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = pool_to(addr, config(1, 2, 8));
    let err = pool.warmup().expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let err = pool.open_stream().expect_err("still nothing");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    until(&pool, "dials go on with backoff", |stats| stats.dial_failures >= 3);
    assert_eq!(pool.stats().live, 0);
}

#[test]
fn a_dial_that_hangs_is_given_up_on_at_the_dial_timeout() {
    let pool = Pool::new(
        PoolConfig {
            dial_timeout: Duration::from_millis(100),
            ..config(1, 1, 8)
        },
        || {
            thread::sleep(Duration::from_secs(3));
            Err(std::io::Error::other("too late"))
        },
    )
    .unwrap();
    let err = pool.warmup().expect_err("the dial hangs");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
}

#[test]
fn idle_sessions_beyond_the_minimum_are_closed() {
    let (addr, _server) = echo_server();
    let pool = pool_to(
        addr,
        PoolConfig {
            idle_timeout: Duration::from_millis(100),
            ..config(1, 3, 1)
        },
    );
    let streams: Vec<PoolStream> = (0..3).map(|_| pool.open_stream().unwrap()).collect();
    assert_eq!(pool.stats().live, 3);
    drop(streams);
    until(&pool, "two idle sessions trimmed", |stats| {
        stats.trimmed == 2 && stats.live == 1
    });
    add_up(&pool.stats());
}
