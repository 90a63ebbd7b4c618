//! # hawser-conformance
//!
//! What every hawser implementation must do, written once:
//! - [`sim`]: a deterministic simulator that wires two [`hawser_core::Session`]s
//!   together over a simulated link with latency, bandwidth and arbitrary splitting
//!   of the byte stream, on simulated time. No sleeps, no real clock, no threads;
//!   the same seed gives the same run.
//! - [`rng`]: the small seeded generator the simulator uses, for tests that want the
//!   same determinism.
//! - [`harness`] and [`scenarios`]: the scenarios every adapter must pass, written
//!   once; an adapter implements [`harness::Harness`] and invokes
//!   [`conformance_tests!`] to get them all as tests named `conformance::*`.
//! - [`faults`]: a loopback TCP proxy that kills its connections on demand, for
//!   the resumption scenarios.
//! - [`path`] (Linux): a packet-level path between two network namespaces, with
//!   delay, a bottleneck, loss, a blackhole and a client that changes address.
//! - [`interop`]: hawser's yamux profile against the `yamux` crate and
//!   `tokio-yamux`, both roles, through any adapter; [`interop_tests!`] makes them
//!   tests named `interop::<peer>::<hawser role>::*`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod faults;
pub mod harness;
pub mod interop;
#[cfg(target_os = "linux")]
pub mod path;
pub mod rng;
pub mod scenarios;
pub mod sim;
