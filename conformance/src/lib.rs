//! # hawser-conformance
//!
//! What every hawser implementation must do, written once:
//! - [`sim`]: a deterministic simulator that wires two [`hawser_core::Session`]s
//!   together over a simulated link with latency, bandwidth and arbitrary splitting
//!   of the byte stream, on simulated time. No sleeps, no real clock, no threads;
//!   the same seed gives the same run.
//! - [`rng`]: the small seeded generator the simulator uses, for tests that want the
//!   same determinism.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod rng;
pub mod sim;
