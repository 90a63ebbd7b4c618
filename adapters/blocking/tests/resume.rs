//! Resumable sessions over hawser-blocking, through a proxy that kills the
//! connection again and again.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hawser_blocking::{Accepted, Acceptor, Config, Resumption, RetryPolicy, Session};
use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;

const STREAMS: u64 = 100;
const PER_STREAM: usize = 256 * 1024;
const KILLS: u64 = 20;
const REPLAY_BUFFER: usize = 1024 * 1024;

fn config() -> Config {
    Config {
        resumption: Some(Resumption {
            replay_buffer: REPLAY_BUFFER,
            ..Resumption::default()
        }),
        ..Config::default()
    }
}

fn serve(listener: TcpListener, acceptor: Acceptor<TcpStream>) {
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { return };
        let acceptor = acceptor.clone();
        thread::spawn(move || {
            if let Ok(Accepted::New(session)) = acceptor.accept(tcp) {
                while let Some(mut stream) = session.accept() {
                    thread::spawn(move || {
                        let mut buf = vec![0u8; 32 * 1024];
                        loop {
                            match stream.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(_) => return,
                            }
                        }
                        let _ = stream.finish();
                    });
                }
            }
        });
    }
}

#[test]
fn a_hundred_streams_survive_twenty_link_kills() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        scenario();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the scenario finished in time (or panicked)");
}

fn scenario() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new(config()).unwrap();
    thread::spawn(move || serve(listener, acceptor));
    let proxy = Arc::new(KillProxy::start(server_addr).unwrap());
    let proxy_addr = proxy.addr();
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let session = Arc::new(Session::connect_resumable(proxy_addr, config(), retry).unwrap());
    assert!(session.is_resumable(), "connect_resumable returned before the ticket");
    let killer = {
        let proxy = proxy.clone();
        let session = session.clone();
        thread::spawn(move || {
            let mut step = 0u64;
            while !session.is_closed() && proxy.kills() < KILLS + 5 {
                step += 1;
                thread::sleep(Duration::from_millis(20 + (step * 37) % 40));
                proxy.kill_all();
            }
        })
    };
    let mut workers = Vec::new();
    for i in 0..STREAMS {
        let mut stream = session.open_stream().unwrap();
        let proxy = proxy.clone();
        let session = session.clone();
        workers.push(thread::spawn(move || {
            let mut pattern = Pattern::new(i);
            while pattern.position() < PER_STREAM as u64 {
                if pattern.position() + 16 * 1024 >= PER_STREAM as u64 {
                    // The last piece waits until the link has been killed often enough.
                    while proxy.kills() < KILLS && !session.is_closed() {
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                stream.write_all(&pattern.take(16 * 1024)).unwrap();
            }
            stream.finish().unwrap();
            let mut check = Pattern::new(i);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                check.check(&buf[..n]).unwrap_or_else(|why| panic!("stream {i}: {why}"));
            }
            assert_eq!(check.position(), PER_STREAM as u64, "stream {i}");
        }));
    }
    for worker in workers {
        worker.join().expect("a stream failed");
    }
    let stats = session.stats();
    let kills = proxy.kills();
    assert!(kills >= KILLS, "{kills} kills");
    assert!(
        stats.resumes >= 1 && stats.resumes <= kills,
        "{} resumes after {kills} kills",
        stats.resumes
    );
    assert!(
        stats.replay_peak <= REPLAY_BUFFER as u64,
        "replay peak {} over the bound {REPLAY_BUFFER}",
        stats.replay_peak
    );
    eprintln!(
        "kills {kills}, resumes {}, reconnect attempts {}, bytes replayed {}, replay peak {} of {REPLAY_BUFFER}",
        stats.resumes,
        session.reconnects(),
        stats.bytes_replayed,
        stats.replay_peak
    );
    session.close(hawser_blocking::GoAwayCode::NORMAL);
    let _ = killer.join();
}

#[test]
fn a_loss_only_the_client_sees_is_resumed_at_once_by_taking_over() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new(config()).unwrap();
    let serving = acceptor.clone();
    thread::spawn(move || serve(listener, serving));
    let proxy = KillProxy::start(server_addr).unwrap();
    let proxy_addr = proxy.addr();
    let session = Session::connect_resumable(proxy_addr, config(), RetryPolicy::default()).unwrap();
    let mut stream = session.open_stream().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut pattern = Pattern::new(7);
    let mut check = Pattern::new(7);
    let mut buf = vec![0u8; 16 * 1024];
    for round in 0..6 {
        if round % 2 == 1 {
            // The server's side of the link stays open and silent: it would
            // notice only when keepalive fails, a minute or more from now.
            assert_eq!(proxy.cut_client_sides(), 1);
        }
        stream.write_all(&pattern.take(16 * 1024)).unwrap();
        stream
            .read_exact(&mut buf)
            .expect("the session resumed without waiting for the server's keepalive");
        check.check(&buf).unwrap();
    }
    assert_eq!(session.stats().resumes, 3);
    let stats = acceptor.stats();
    assert_eq!((stats.sessions, stats.detached, stats.refused), (1, 0, 0), "{stats:?}");
    session.close(hawser_blocking::GoAwayCode::NORMAL);
}
