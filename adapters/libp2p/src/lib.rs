//! # hawser-libp2p
//!
//! hawser as a [libp2p](https://docs.rs/libp2p) stream muxer: a drop-in for
//! `libp2p-yamux`. It negotiates `/yamux/1.0.0` and speaks yamux byte for
//! byte, so it connects to every libp2p peer that muxes with yamux (Rust,
//! Go, JavaScript); between two hawser peers nothing changes on the wire
//! either.
//!
//! What changes is the muxer's behaviour:
//! - receive windows grow with the path (up to 16 MiB per stream within a
//!   256 MiB session budget by default), where yamux's 256 KiB window caps a
//!   stream on a long path;
//! - keepalive pings and window updates go ahead of queued bulk data;
//! - inbound streams wait in a bounded backlog that the peer's open limit
//!   respects, and are never dropped because the swarm was slow to accept
//!   them; extra streams beyond the configured limits are refused one by one,
//!   and the connection stays up;
//! - memory is bounded by the configuration, whatever the peer sends.
//!
//! ## Use
//!
//! In the swarm builder, `hawser_libp2p::Config::default` takes the place of
//! `libp2p::yamux::Config::default`:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use libp2p::{noise, ping, tcp};
//!
//! let mut swarm = libp2p::SwarmBuilder::with_new_identity()
//!     .with_tokio()
//!     .with_tcp(tcp::Config::default(), noise::Config::new, hawser_libp2p::Config::default)?
//!     .with_behaviour(|_| ping::Behaviour::default())?
//!     .build();
//! swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Config::new`] takes a [`hawser_core::Config`] in the yamux profile for
//! every knob of the session (windows, budgets, stream limits, keepalive,
//! timeouts).
//!
//! ## Semantics
//!
//! A [`Substream`] follows libp2p's rules: `poll_close` finishes the writing
//! side once its data is handed to the link; dropping a substream that is
//! still open both ways resets it (libp2p handlers drop a substream to abort
//! it). The [`Muxer`] runs its session inside the connection task's polls
//! and spawns nothing; it works on any executor (its timers are async-io's,
//! which need none).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod muxer;
mod substream;

pub use config::{Config, PROTOCOL_NAME};
pub use muxer::Muxer;
pub use substream::Substream;
