//! Liveness from progress: a link that stops answering is suspected within
//! the silence bound, not after several keepalive intervals; a busy or idle
//! healthy link never is.

mod common;

use std::time::Duration;

use common::*;
use hawser_conformance::sim::{Pair, Side, SimConfig};
use hawser_core::{Config, Event, Liveness, Profile};

fn suspicions(pair: &Pair, side: Side) -> Vec<Duration> {
    pair.events(side)
        .iter()
        .filter_map(|event| match event {
            Event::LinkSuspect { silent_for } => Some(*silent_for),
            _ => None,
        })
        .collect()
}

fn responsive(pair: &Pair, side: Side) -> usize {
    pair.events(side)
        .iter()
        .filter(|event| matches!(event, Event::LinkResponsive))
        .count()
}

fn wan() -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::default()
    }
}

#[test]
fn a_write_into_a_silent_link_is_suspected_within_one_and_a_half_bounds() {
    for profile in profiles() {
        let mut pair = Pair::new(config(profile), config(profile), wan());
        let id = pair.client.open(pair.now).expect("room for a stream");
        write_all_now(&mut pair.client, id, b"hello");
        pair.drive_for(Duration::from_secs(2));
        accept_all(&mut pair, Side::Server);
        pair.take_events(Side::Client);
        assert!(!pair.client.is_link_suspect());

        pair.blackhole(true);
        let written_at = pair.now;
        write_all_now(&mut pair.client, id, b"into the void");
        let mut suspected_at = None;
        while pair.now.saturating_duration_since(written_at) < Duration::from_secs(5) {
            pair.step_within(Duration::from_millis(10));
            if pair.client.is_link_suspect() {
                suspected_at = Some(pair.now);
                break;
            }
        }
        let suspected_at = suspected_at.expect("the silent link is suspected");
        // The bound is the 1 s floor (4 round trips of 100 ms are less): a
        // probe after half of it, suspicion one bound after the probe.
        let took = suspected_at.saturating_duration_since(written_at);
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_millis(1600),
            "{profile:?}: {took:?}"
        );
        assert_eq!(
            suspicions(&pair, Side::Client).len(),
            1,
            "{profile:?}: one event per episode"
        );
        assert!(!pair.client.is_closed(), "suspicion does not end the session");

        pair.blackhole(false);
        pair.drive_for(Duration::from_millis(500));
        assert!(
            !pair.client.is_link_suspect(),
            "{profile:?}: input clears the suspicion"
        );
        assert_eq!(responsive(&pair, Side::Client), 1);
        let (data, _) = read_available(&mut pair.server, id);
        assert_eq!(data, b"hellointo the void", "{profile:?}: nothing lost");
    }
}

#[test]
fn an_idle_healthy_link_is_never_suspect() {
    for profile in profiles() {
        let mut pair = Pair::new(config(profile), config(profile), wan());
        pair.drive_for(Duration::from_secs(300));
        assert!(suspicions(&pair, Side::Client).is_empty(), "{profile:?}");
        assert!(suspicions(&pair, Side::Server).is_empty(), "{profile:?}");
        // Keepalive pings go every 30 s; the idle link adds no probes.
        assert!(
            pair.client.stats().pings_sent <= 11,
            "{profile:?}: {}",
            pair.client.stats().pings_sent
        );
    }
}

#[test]
fn a_slow_saturated_link_is_not_a_dead_link() {
    // A link that delivers slowly (2 Mbit/s, 100 ms round trip) with a
    // transfer much larger than the window, whose sender keeps its unsent
    // queue small (as the helpers' TCP_NOTSENT_LOWAT does): window updates
    // come only every second or so, but probes are answered at once.
    let sim = SimConfig {
        latency: Duration::from_millis(50),
        bandwidth: Some(250_000),
        send_queue: Some(32 * 1024),
        ..SimConfig::default()
    };
    let mut pair = Pair::new(config(Profile::Native), config(Profile::Native), sim);
    let id = pair.client.open(pair.now).expect("room for a stream");
    let data = pattern(2 * 1024 * 1024, 7);
    let mut sent = 0;
    let mut received = Vec::new();
    let mut accepted = false;
    let start = pair.now;
    while received.len() < data.len() {
        assert!(
            pair.now.saturating_duration_since(start) < Duration::from_secs(60),
            "stalled"
        );
        if sent < data.len() {
            if let Ok(n) = pair.client.stream(id).write_slice(&data[sent..]) {
                sent += n;
            }
        }
        pair.step_within(Duration::from_millis(50));
        accepted |= !accept_all(&mut pair, Side::Server).is_empty();
        if accepted {
            received.extend(read_available(&mut pair.server, id).0);
        }
    }
    assert_eq!(received, data);
    assert!(suspicions(&pair, Side::Client).is_empty());
    assert!(suspicions(&pair, Side::Server).is_empty());
}

#[test]
fn the_bound_follows_the_smallest_round_trip() {
    let liveness = Liveness::default();
    assert_eq!(liveness.silence_bound(None), Duration::from_secs(1));
    assert_eq!(
        liveness.silence_bound(Some(Duration::from_millis(100))),
        Duration::from_secs(1)
    );
    assert_eq!(
        liveness.silence_bound(Some(Duration::from_millis(600))),
        Duration::from_millis(2400)
    );
}

#[test]
fn liveness_can_be_turned_off() {
    let quiet = Config {
        liveness: None,
        ..config(Profile::Native)
    };
    let mut pair = Pair::new(quiet.clone(), quiet, wan());
    let id = pair.client.open(pair.now).expect("room for a stream");
    pair.drive();
    pair.blackhole(true);
    write_all_now(&mut pair.client, id, b"x");
    pair.drive_for(Duration::from_secs(5));
    assert!(suspicions(&pair, Side::Client).is_empty());
    assert!(!pair.client.is_link_suspect());
}

#[test]
fn a_zero_floor_is_refused() {
    let config = Config {
        liveness: Some(Liveness {
            floor: Duration::ZERO,
            ..Liveness::default()
        }),
        ..Config::default()
    };
    let err = config.validate().expect_err("a zero floor would suspect every link");
    assert_eq!(err.field, "liveness.floor");
}
