//! # hawser-tunnel
//!
//! The `hawser` program: TCP port forwarding over one encrypted, multiplexed
//! hawser session whose forwarded connections survive the loss of the link.
//!
//! - the link is TLS 1.3 (rustls); the client trusts the server's certificate
//!   by its SHA-256 fingerprint or by a CA file;
//! - the client proves a shared token (HMAC over a fresh challenge, checked in
//!   constant time) before the server makes a session for the link;
//! - the server forwards only to targets on its `--allow` list and listens only
//!   on its `--allow-reverse` addresses; everything else is refused per stream
//!   with a reset code and a message the client prints;
//! - the session is resumable: when the link drops the client redials, and each
//!   forwarded connection carries on with nothing lost or repeated; if it cannot
//!   resume, the connections are reset (never ended cleanly) and a new session
//!   is built.
//!
//! The library is what the binary runs, so that tests and the demo can start a
//! server and a client in one process.

// Unsafe code only where a measured win needs it: the TLS link opens records
// in the reader's own (uninitialised) buffer (`records::TlsLink::read_direct`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod allow;
pub mod auth;
pub mod cli;
pub mod client;
pub mod command;
pub mod config;
pub mod cores;
pub mod demo;
pub mod forward;
pub mod link;
pub mod metrics;
pub mod proxy;
pub mod records;
pub mod rights;
pub mod server;
pub mod shutdown;
pub mod socks;
pub mod tls;
pub mod websocket;
pub mod wire;

use std::io;
use std::time::Duration;

/// Exit status: the command line or a file named on it is wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: authentication failed (wrong token, or the server's
/// certificate is not the trusted one).
pub const EXIT_AUTH: u8 = 3;
/// Exit status: the server could not be reached, or the link failed for good.
pub const EXIT_LINK: u8 = 4;
/// Exit status: the server refused a forward (not on its allow lists).
pub const EXIT_REFUSED: u8 = 5;

/// Whether a link error is an authentication failure: a wrong token, or a
/// certificate that is not the trusted one.
pub fn is_auth_failure(err: &io::Error) -> bool {
    use auth::AuthError;
    if let Some(auth) = AuthError::of(err) {
        return matches!(auth, AuthError::BadToken | AuthError::RateLimited);
    }
    let tls = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(
        tls,
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::General(_))
    )
}

/// Whether a link error says this client's credentials are not accepted (a
/// wrong token, or a certificate that is not the trusted one): a redial
/// cannot mend that. A refusal for too many failures from this address is
/// not one; it passes.
pub fn credentials_rejected(err: &io::Error) -> bool {
    if let Some(auth) = auth::AuthError::of(err) {
        return auth == auth::AuthError::BadToken;
    }
    is_auth_failure(err)
}

/// The exit status for a link error.
pub fn exit_code(err: &io::Error) -> u8 {
    if is_auth_failure(err) {
        EXIT_AUTH
    } else if err.kind() == io::ErrorKind::InvalidInput {
        EXIT_USAGE
    } else {
        EXIT_LINK
    }
}

/// A link error in words a user can act on.
pub fn describe_link_error(err: &io::Error) -> String {
    if let Some(auth) = auth::AuthError::of(err) {
        return auth.to_string();
    }
    if let Some(tls) = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return format!("TLS: {tls}");
    }
    err.to_string()
}

/// How long the tunnel's sessions wait for a new link: long enough for a
/// laptop that sleeps a few minutes or a network that is gone for a while,
/// within the server's detached budgets (count, memory, per address).
pub const OUTAGE: Duration = Duration::from_secs(5 * 60);

/// The session configuration the tunnel uses on both sides: the native
/// profile, resumption with the default budgets and a detached session kept
/// for [`OUTAGE`], keepalive every 10 s so that a dead link is noticed within
/// about 40 s even when nothing is forwarded (a link that stops answering
/// while something is forwarded is suspected within about 2 s).
pub fn session_config() -> hawser_core::Config {
    hawser_core::Config {
        resumption: Some(hawser_core::Resumption {
            detached_timeout: OUTAGE,
            ..hawser_core::Resumption::default()
        }),
        keepalive_interval: Some(Duration::from_secs(10)),
        ..hawser_core::Config::default()
    }
}

/// How the tunnel's client redials a lost link: for as long as the server
/// keeps the session ([`OUTAGE`]), at most 5 s apart.
pub fn retry_policy() -> hawser_tokio::RetryPolicy {
    hawser_tokio::RetryPolicy {
        give_up_after: OUTAGE,
        max_attempts: u32::MAX,
        ..hawser_tokio::RetryPolicy::default()
    }
}
