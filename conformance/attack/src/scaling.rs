//! How the cost of registering a resumable session grows with the sessions the
//! registry already holds: it must not (a walk of every session per accept
//! would let clients choke a server's accept rate).

use std::time::Instant;

use hawser_core::{Config, Resumption, Role};
use hawser_driver::{LinkSide, Registry};

/// Prints the time per registration with 1k to 100k live sessions registered.
pub fn run() {
    let config = Config {
        resumption: Some(Resumption::default()),
        ..Config::default()
    };
    const TIMED: usize = 2_000;
    for live in [1_000usize, 10_000, 50_000, 100_000] {
        let registry: Registry<()> = Registry::new(Resumption::default());
        let mut held = Vec::with_capacity(live);
        for _ in 0..live {
            let Ok(shared) = LinkSide::new(Role::Server, config.clone()) else {
                eprintln!("invalid config");
                return;
            };
            match registry.register(&shared, None) {
                Ok(slot) => held.push((shared, slot)),
                Err(err) => {
                    eprintln!("cannot register: {err}");
                    return;
                }
            }
        }
        let fresh: Vec<_> = (0..TIMED)
            .filter_map(|_| LinkSide::new(Role::Server, config.clone()).ok())
            .collect();
        let started = Instant::now();
        for shared in &fresh {
            // Registered and, as its driver ends, removed again.
            drop(registry.register(shared, None));
        }
        let per = started.elapsed() / TIMED as u32;
        println!(
            "{live:>7} live sessions: {:>6.2} µs per registration",
            per.as_secs_f64() * 1e6
        );
    }
}
