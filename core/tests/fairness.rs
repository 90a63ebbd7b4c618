//! Streams that write as fast as they can share the session-wide send buffer:
//! whichever writer happens to run first after room frees up must not take it
//! all, every time.

use bytes::Bytes;
use hawser_core::{Config, Instant, Role, Session, StreamId, WriteError};

const CHUNK: usize = 64 * 1024;

fn session() -> Session {
    let config = Config {
        stream_send_buffer: 2 * CHUNK,
        session_send_buffer: 4 * CHUNK,
        keepalive_interval: None,
        ..Config::yamux()
    };
    Session::new(Role::Client, config, Instant::ZERO).expect("a valid config")
}

/// Writes a chunk; returns how much the session took (0 when blocked).
fn offer(session: &mut Session, id: StreamId) -> usize {
    match session.stream(id).write(Bytes::from(vec![7u8; CHUNK])) {
        Ok(taken) => taken,
        Err(WriteError::Blocked) => 0,
        Err(err) => panic!("write on {id} failed: {err}"),
    }
}

#[test]
fn a_writer_that_always_runs_first_gets_no_more_than_its_share() {
    let now = Instant::ZERO;
    let mut session = session();
    let streams: Vec<StreamId> = (0..4).map(|_| session.open(now).expect("room for a stream")).collect();
    let mut taken = [0usize; 4];
    // The first two fill the session's buffer; the other two find it full.
    for (at, &id) in streams.iter().enumerate() {
        while offer(&mut session, id) > 0 {
            taken[at] += CHUNK;
        }
    }
    assert_eq!(taken, [2 * CHUNK, 2 * CHUNK, 0, 0]);
    // Each round one frame goes out, and the writers run in the same order:
    // the first stream always gets the first chance at the freed room.
    for _ in 0..6 {
        loop {
            let frame = session.poll_transmit(now).expect("data waits to be sent");
            if !frame.payload().is_empty() {
                break;
            }
        }
        for (at, &id) in streams.iter().enumerate() {
            taken[at] += offer(&mut session, id);
        }
    }
    assert!(
        taken[2] >= 2 * CHUNK && taken[3] >= 2 * CHUNK,
        "the streams that found the buffer full got {} and {} bytes in, the first two {} and {}",
        taken[2],
        taken[3],
        taken[0],
        taken[1]
    );
}
