//! Helpers shared by the core's scenario tests.
#![allow(dead_code)] // each test binary uses a different subset

use bytes::Bytes;
use hawser_conformance::sim::{Pair, Side, SimConfig};
use hawser_core::{Config, Event, Profile, ReadError, Session, StreamId};

pub fn config(profile: Profile) -> Config {
    Config {
        profile,
        ..Config::default()
    }
}

pub fn pair(profile: Profile) -> Pair {
    Pair::new(config(profile), config(profile), SimConfig::default())
}

pub fn profiles() -> [Profile; 2] {
    [Profile::Native, Profile::Yamux]
}

/// Reads everything buffered on a stream; `true` in the result means end of stream.
pub fn read_available(session: &mut Session, id: StreamId) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match session.stream(id).read(usize::MAX) {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            Ok(None) => return (out, true),
            Err(ReadError::Blocked) => return (out, false),
            Err(err) => panic!("read on {id} failed: {err}"),
        }
    }
}

/// Accepts every waiting inbound stream on `side`.
pub fn accept_all(pair: &mut Pair, side: Side) -> Vec<StreamId> {
    let mut ids = Vec::new();
    while let Some(id) = pair.session(side).accept() {
        ids.push(id);
    }
    ids
}

pub fn write_all_now(session: &mut Session, id: StreamId, data: &[u8]) {
    let written = session.stream(id).write(Bytes::copy_from_slice(data)).expect("write");
    assert_eq!(written, data.len(), "the send buffer took only part of the write");
}

pub fn has_event(pair: &Pair, side: Side, wanted: &Event) -> bool {
    pair.events(side).iter().any(|event| event == wanted)
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
