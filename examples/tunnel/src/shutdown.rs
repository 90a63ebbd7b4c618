//! Ending sessions, the same way at both ends: a drain with a deadline, and
//! ending at once when the deadline passes or a second signal comes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hawser_core::GoAwayCode;
use hawser_tokio::Control;

/// How long a side that ends its sessions waits for the other side to have
/// read their last frames (the go-away, the resets) before the process exits.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Goes away on `sessions` with `reason` (no new connections either way) and
/// waits up to `drain` for their connections to finish; ends what is still
/// open then ([`end_now`]). `open` counts the open connections, for the log.
pub async fn drain(sessions: &[Control], drain: Duration, reason: &str, open: &AtomicU64) {
    for control in sessions {
        let _ = control.go_away_with_reason(GoAwayCode::NORMAL, reason);
    }
    if tokio::time::timeout(drain, all_closed(sessions)).await.is_ok() {
        tracing::info!("drained: every connection finished");
        let _ = tokio::time::timeout(CLOSE_FLUSH, all_released(sessions)).await;
    } else {
        tracing::warn!(
            open = open.load(Ordering::Relaxed),
            "the drain ran out; closing: open connections are reset"
        );
        end_now(sessions, reason).await;
    }
}

/// Ends `sessions` at once: each stream still open is reset, on the link
/// too, so that the other side resets its end of each connection at once
/// instead of waiting for a link that will not come back. Waits up to
/// [`CLOSE_FLUSH`] for the other side to have read the resets, then closes
/// what is left.
pub async fn end_now(sessions: &[Control], reason: &str) {
    for control in sessions {
        let _ = control.go_away_with_reason(GoAwayCode::NORMAL, reason);
        control.end_drain();
    }
    // Not just until each link is shut: the process exits next, and the
    // kernel resets a socket closed with unread data, which would throw away
    // the resets still on their way.
    let _ = tokio::time::timeout(CLOSE_FLUSH, all_released(sessions)).await;
    for control in sessions {
        control.close(GoAwayCode::NORMAL);
    }
}

async fn all_closed(sessions: &[Control]) {
    for control in sessions {
        let _ = control.closed().await;
    }
}

async fn all_released(sessions: &[Control]) {
    for control in sessions {
        let _ = control.released().await;
    }
}
