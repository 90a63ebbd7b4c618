//! The small interface an adapter implements to run every conformance scenario.
//!
//! An adapter writes one [`Harness`] (how to make sessions over loopback TCP, how
//! to spawn and sleep) and invokes [`conformance_tests!`](crate::conformance_tests)
//! in a test file; every scenario then runs under the same name for every adapter,
//! e.g. `conformance::echo`.

use std::future::Future;
use std::io;
use std::time::Duration;

use hawser_core::{Config, GoAwayCode, ResetCode, Role, SessionError};
use hawser_driver::ControlCore;

/// One adapter, as the scenarios see it.
pub trait Harness: 'static {
    /// A session handle; clones share the session.
    type Session: HarnessSession;
    /// A raw byte link the scenario drives by hand (to play a broken peer).
    type Raw: RawLink;

    /// A client and a server session connected over loopback TCP.
    fn pair(client: Config, server: Config) -> impl Future<Output = io::Result<(Self::Session, Self::Session)>> + Send;

    /// A session with `role` over loopback TCP whose other end is a raw link.
    fn with_raw_peer(role: Role, config: Config)
        -> impl Future<Output = io::Result<(Self::Session, Self::Raw)>> + Send;

    /// Runs `task` concurrently; the returned future waits for it.
    fn spawn<F>(task: F) -> impl Future<Output = ()> + Send
    where
        F: Future<Output = ()> + Send + 'static;

    /// Waits for `duration`.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Session operations the scenarios use. Go-away, close and the getters come from
/// the [`ControlCore`] every adapter's session shares.
pub trait HarnessSession: Clone + Send + Sync + 'static {
    /// A stream of this session.
    type Stream: HarnessStream;
    /// Opens a stream (waiting while limits are reached).
    fn open(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// The next inbound stream, `None` once no more will come.
    fn accept(&self) -> impl Future<Output = Option<Self::Stream>> + Send;
    /// The session-wide operations.
    fn control(&self) -> &ControlCore;

    /// Starts a graceful shutdown.
    fn go_away(&self, code: GoAwayCode) -> io::Result<()> {
        self.control().go_away(code)
    }
    /// Closes at once.
    fn close(&self, code: GoAwayCode) {
        self.control().close(code);
    }
    /// Whether the session has ended.
    fn is_closed(&self) -> bool {
        self.control().is_closed()
    }
    /// Why it ended abnormally.
    fn close_reason(&self) -> Option<SessionError> {
        self.control().close_reason()
    }
    /// Bytes received on streams and not yet read, session-wide.
    fn buffered_receive(&self) -> u64 {
        self.control().buffered_receive()
    }
}

/// Stream operations the scenarios use.
pub trait HarnessStream: Send + 'static {
    /// Reads into `buf`; 0 is end of stream.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Finishes this side.
    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Resets the stream with `code`.
    fn reset(self, code: ResetCode);
    /// Resets the stream with `code` and `reason`.
    fn reset_with_reason(self, code: ResetCode, reason: &str);
}

/// A raw byte link, for playing a broken or silent peer.
pub trait RawLink: Send + 'static {
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads into `buf`; 0 is end of file.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

/// Reads a stream to its end.
pub async fn read_to_end<S: HarnessStream>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Instantiates every scenario of [`scenarios`](crate::scenarios) as a `#[test]` in a
/// module named `conformance`, for harness `$harness`, each run by `$run` (an
/// expression that takes a future and blocks on it, with a time limit).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty, $run:expr) => {
        mod conformance {
            use super::*;
            $crate::conformance_tests!(@each $harness, $run;
                echo, hundred_streams_both_ways_with_checksums, half_close, reset_code_reaches_the_peer, reasons_reach_the_peer, a_dropped_stream_whose_peer_keeps_sending_is_reset,
                slow_reader_does_not_stop_other_streams, backlog_overflow_is_refused, max_streams_is_enforced, go_away_drains,
                silent_peer_is_declared_dead, health_events_and_status, missed_pings_are_health_events, link_eof_mid_transfer_fails_streams, link_error_mid_transfer_fails_streams, an_ended_session_reads_until_the_peer_closes, released_waits_until_the_peer_has_closed, garbage_from_the_peer_is_a_clear_error,
                many_sessions_at_once);
        }
    };
    (@each $harness:ty, $run:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let outcome: Result<(), String> = ($run)($crate::scenarios::$name::<$harness>());
                if let Err(why) = outcome {
                    panic!("scenario {} failed: {why}", stringify!($name));
                }
            }
        )*
    };
}
