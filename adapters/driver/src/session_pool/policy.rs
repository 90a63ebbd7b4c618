//! The pool's decisions, with no clock, no I/O and no runtime: the adapters pass
//! the time in and carry the decisions out.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// How a pool sizes itself and waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Sessions the pool keeps dialled, idle or not; `warmup` dials up to this
    /// many and the pool replaces lost ones in the background. Default 1.
    pub min_sessions: usize,
    /// Sessions the pool never exceeds, dialling ones included. Default 8.
    pub max_sessions: usize,
    /// Streams opened through the pool and still held on one session before the
    /// next stream goes to another session (dialled if need be). Keep it at or
    /// below the peer's `max_streams`. Default 128.
    pub streams_per_session: usize,
    /// How long one dial may take before it counts as failed. Default 10 s.
    pub dial_timeout: Duration,
    /// How long `open_stream` waits for a session with room (every session full
    /// and the pool at `max_sessions`, or a dial under way) before it fails with
    /// `TimedOut`. Default 10 s.
    pub open_timeout: Duration,
    /// A session beyond `min_sessions` with no stream of the pool's for this long
    /// is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// The wait after a failed dial before the next one; it doubles with every
    /// failure in a row up to `max_dial_backoff`. Default 100 ms.
    pub initial_dial_backoff: Duration,
    /// The longest wait between failed dials. Default 5 s.
    pub max_dial_backoff: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_sessions: 1,
            max_sessions: 8,
            streams_per_session: 128,
            dial_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            initial_dial_backoff: Duration::from_millis(100),
            max_dial_backoff: Duration::from_secs(5),
        }
    }
}

/// A [`PoolConfig`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolConfigError {
    /// `max_sessions` is 0.
    NoSessions,
    /// `min_sessions` is above `max_sessions`.
    MinAboveMax,
    /// `streams_per_session` is 0.
    NoStreams,
}

impl fmt::Display for PoolConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolConfigError::NoSessions => "pool: max_sessions must be at least 1",
            PoolConfigError::MinAboveMax => "pool: min_sessions must not exceed max_sessions",
            PoolConfigError::NoStreams => "pool: streams_per_session must be at least 1",
        })
    }
}

impl std::error::Error for PoolConfigError {}

impl From<PoolConfigError> for io::Error {
    fn from(err: PoolConfigError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

impl PoolConfig {
    /// Checks that the pool can work with these numbers.
    pub fn validate(&self) -> Result<(), PoolConfigError> {
        if self.max_sessions == 0 {
            return Err(PoolConfigError::NoSessions);
        }
        if self.min_sessions > self.max_sessions {
            return Err(PoolConfigError::MinAboveMax);
        }
        if self.streams_per_session == 0 {
            return Err(PoolConfigError::NoStreams);
        }
        Ok(())
    }

    /// The wait after `failures` failed dials in a row (at least 1).
    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.initial_dial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_dial_backoff)
    }
}

/// What a pool needs to know of one of its sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Usable for new streams.
    Ready,
    /// Resumable and waiting for a new link: kept, but not given new streams
    /// until it has resumed.
    Detached,
    /// A keepalive ping went unanswered: taken out.
    Unhealthy,
    /// A go-away was sent or received: taken out.
    Draining,
    /// Ended: taken out.
    Closed,
}

/// A session as a pool sees it.
pub trait PoolMember: Clone {
    /// Whether the session can take new streams now.
    fn condition(&self) -> Condition;
}

/// A pool session's number within its pool; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// Counters of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Dials that produced a session.
    pub dialled: u64,
    /// Dials that failed or timed out.
    pub dial_failures: u64,
    /// Sessions taken out because they went unhealthy, draining or closed.
    pub evicted: u64,
    /// Sessions closed for being idle beyond `min_sessions`.
    pub trimmed: u64,
    /// Sessions in the pool now (detached ones included).
    pub live: usize,
    /// Dials under way now.
    pub dialling: usize,
    /// Streams opened through the pool.
    pub streams_opened: u64,
    /// Streams opened through the pool and not yet dropped.
    pub streams_held: usize,
    /// Opens that found no session with room at first and had to wait.
    pub opens_waited: u64,
    /// Opens that gave up after `open_timeout`.
    pub open_timeouts: u64,
    /// The time waiting opens spent waiting, in all.
    pub wait_total: Duration,
    /// The longest wait of one open.
    pub wait_longest: Duration,
}

/// What an open should do next.
#[derive(Debug)]
pub enum Pick<S> {
    /// Open the stream on this session. A slot on it is reserved: hand it back
    /// with [`PoolPolicy::release`] when the stream is dropped or the open failed.
    Open {
        /// The member the slot is on.
        member: MemberId,
        /// The session to open the stream on.
        session: S,
    },
    /// Dial a new session and report with [`PoolPolicy::dial_succeeded`] or
    /// [`PoolPolicy::dial_failed`]; it already counts as dialling.
    Dial,
    /// Wait for a change in the pool, or until `until` (the end of a dial
    /// backoff) when there is one.
    Wait {
        /// When waiting ends anyway, if it does.
        until: Option<Instant>,
    },
    /// No session is usable, none is being dialled, and the last dial failed
    /// with this; the next dial waits for its backoff.
    Failed(io::Error),
}

struct Member<S> {
    id: MemberId,
    session: S,
    /// Slots reserved or held by streams of the pool's.
    streams: usize,
    /// Since when `streams` has been 0.
    idle_since: Option<Instant>,
}

/// The last failed dial, kept to answer opens while nothing is usable.
struct DialFailure {
    kind: io::ErrorKind,
    message: String,
}

/// Which session each new stream goes to, when to dial, and which sessions to
/// take out: the least-loaded ready session with room gets the stream; when all
/// are full (or none is ready) another is dialled, one at a time, up to
/// `max_sessions`; beyond that, opens wait. Unhealthy, draining and closed sessions are taken out as
/// soon as the policy looks at them; detached ones stay but get no streams.
pub struct PoolPolicy<S> {
    config: PoolConfig,
    members: Vec<Member<S>>,
    next_member: u64,
    dialling: usize,
    failures_in_row: u32,
    /// No dial before this, after a failure.
    dial_not_before: Option<Instant>,
    last_failure: Option<DialFailure>,
    stats: PoolStats,
}

impl<S: PoolMember> PoolPolicy<S> {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Result<Self, PoolConfigError> {
        config.validate()?;
        Ok(PoolPolicy {
            config,
            members: Vec::new(),
            next_member: 0,
            dialling: 0,
            failures_in_row: 0,
            dial_not_before: None,
            last_failure: None,
            stats: PoolStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Takes out every session that is unhealthy, draining or closed; returns
    /// them, so that the caller drops them outside any lock of its own.
    pub fn evict_unusable(&mut self) -> Vec<S> {
        let mut evicted = Vec::new();
        let mut kept = Vec::with_capacity(self.members.len());
        for member in self.members.drain(..) {
            match member.session.condition() {
                Condition::Ready | Condition::Detached => kept.push(member),
                Condition::Unhealthy | Condition::Draining | Condition::Closed => {
                    tracing::debug!(member = member.id.0, "pool: session taken out");
                    evicted.push(member.session);
                }
            }
        }
        self.members = kept;
        self.stats.evicted += evicted.len() as u64;
        evicted
    }

    /// Where the next stream goes (see [`Pick`]). Unusable sessions are taken
    /// out first and returned in `evicted`.
    pub fn pick(&mut self, now: Instant, evicted: &mut Vec<S>) -> Pick<S> {
        evicted.extend(self.evict_unusable());
        let per_session = self.config.streams_per_session;
        let mut best: Option<usize> = None;
        for (at, member) in self.members.iter().enumerate() {
            if member.session.condition() != Condition::Ready {
                continue;
            }
            if member.streams < per_session && best.map_or(true, |b| member.streams < self.members[b].streams) {
                best = Some(at);
            }
        }
        if let Some(at) = best {
            let member = &mut self.members[at];
            member.streams += 1;
            member.idle_since = None;
            return Pick::Open {
                member: member.id,
                session: member.session.clone(),
            };
        }
        let in_backoff = self.dial_not_before.is_some_and(|at| now < at);
        // One dial at a time for opens: the session it brings has room for
        // `streams_per_session` of them, and a burst of opens must not dial
        // the pool up to its maximum before the first dial has even finished.
        if self.dialling == 0 && self.members.len() < self.config.max_sessions && !in_backoff {
            self.dialling += 1;
            return Pick::Dial;
        }
        let nothing_coming = self.dialling == 0 && self.members.is_empty();
        if let (true, Some(err)) = (nothing_coming, self.last_dial_error()) {
            return Pick::Failed(err);
        }
        Pick::Wait {
            until: self.dial_not_before.filter(|_| in_backoff),
        }
    }

    /// The error of the last dial, if it failed.
    pub fn last_dial_error(&self) -> Option<io::Error> {
        let failure = self.last_failure.as_ref()?;
        Some(io::Error::new(failure.kind, failure.message.clone()))
    }

    /// A stream of `member`'s (or a reserved slot whose open failed) is gone.
    pub fn release(&mut self, member: MemberId, now: Instant) {
        if let Some(member) = self.members.iter_mut().find(|m| m.id == member) {
            member.streams = member.streams.saturating_sub(1);
            if member.streams == 0 {
                member.idle_since = Some(now);
            }
        }
    }

    /// A stream was opened on a reserved slot.
    pub fn opened(&mut self) {
        self.stats.streams_opened += 1;
    }

    /// A dial produced `session`; it joins the pool.
    pub fn dial_succeeded(&mut self, session: S, now: Instant) -> MemberId {
        self.dialling = self.dialling.saturating_sub(1);
        self.failures_in_row = 0;
        self.dial_not_before = None;
        self.last_failure = None;
        self.stats.dialled += 1;
        let id = MemberId(self.next_member);
        self.next_member += 1;
        self.members.push(Member {
            id,
            session,
            streams: 0,
            idle_since: Some(now),
        });
        id
    }

    /// A dial failed with `err`: the next one waits for the backoff.
    pub fn dial_failed(&mut self, err: &io::Error, now: Instant) {
        self.dialling = self.dialling.saturating_sub(1);
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        self.dial_not_before = Some(now + self.config.backoff(self.failures_in_row));
        self.last_failure = Some(DialFailure {
            kind: err.kind(),
            message: format!("pool: dial failed: {err}"),
        });
        self.stats.dial_failures += 1;
    }

    /// How many dials to start now to bring the pool up to `min_sessions` (none
    /// while a backoff runs); they count as dialling at once.
    pub fn dials_wanted(&mut self, now: Instant) -> usize {
        if self.dial_not_before.is_some_and(|at| now < at) {
            return 0;
        }
        let wanted = self
            .config
            .min_sessions
            .saturating_sub(self.members.len() + self.dialling);
        self.dialling += wanted;
        wanted
    }

    /// Takes out sessions beyond `min_sessions` that have had no stream for
    /// `idle_timeout`, longest idle first; returns them to be dropped.
    pub fn trim_idle(&mut self, now: Instant) -> Vec<S> {
        let mut trimmed = Vec::new();
        while self.members.len() > self.config.min_sessions {
            let longest_idle = self
                .members
                .iter()
                .enumerate()
                .filter_map(|(at, m)| m.idle_since.map(|since| (since, at)))
                .min();
            match longest_idle {
                Some((since, at)) if now.saturating_duration_since(since) >= self.config.idle_timeout => {
                    trimmed.push(self.members.remove(at).session);
                }
                _ => break,
            }
        }
        self.stats.trimmed += trimmed.len() as u64;
        trimmed
    }

    /// When the policy next wants to act without being asked: a dial backoff
    /// ending while the pool is below `min_sessions`, or an idle session
    /// reaching `idle_timeout`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let below_min = self.members.len() + self.dialling < self.config.min_sessions;
        let backoff = self.dial_not_before.filter(|_| below_min);
        let trim = if self.members.len() > self.config.min_sessions {
            self.members
                .iter()
                .filter_map(|m| m.idle_since)
                .min()
                .map(|since| since + self.config.idle_timeout)
        } else {
            None
        };
        match (backoff, trim) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `member` is still in the pool.
    pub fn contains(&self, member: MemberId) -> bool {
        self.members.iter().any(|m| m.id == member)
    }

    /// Takes every session out (the pool is shutting down).
    pub fn clear(&mut self) -> Vec<S> {
        self.members.drain(..).map(|m| m.session).collect()
    }

    /// An open waited `waited` before it got its stream, or gave up.
    pub fn record_wait(&mut self, waited: Duration, timed_out: bool) {
        self.stats.opens_waited += 1;
        self.stats.open_timeouts += u64::from(timed_out);
        self.stats.wait_total += waited;
        self.stats.wait_longest = self.stats.wait_longest.max(waited);
    }

    /// The counters, with the live numbers filled in.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            live: self.members.len(),
            dialling: self.dialling,
            streams_held: self.members.iter().map(|m| m.streams).sum(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A session whose condition the test sets.
    #[derive(Clone)]
    struct Fake(Rc<Cell<Condition>>);

    impl Fake {
        fn ready() -> Fake {
            Fake(Rc::new(Cell::new(Condition::Ready)))
        }
        fn set(&self, condition: Condition) {
            self.0.set(condition);
        }
    }

    impl PoolMember for Fake {
        fn condition(&self) -> Condition {
            self.0.get()
        }
    }

    fn config(min: usize, max: usize, per_session: usize) -> PoolConfig {
        PoolConfig {
            min_sessions: min,
            max_sessions: max,
            streams_per_session: per_session,
            ..PoolConfig::default()
        }
    }

    fn pick(pool: &mut PoolPolicy<Fake>, now: Instant) -> Pick<Fake> {
        pool.pick(now, &mut Vec::new())
    }

    fn opened_on(pick: Pick<Fake>) -> MemberId {
        match pick {
            Pick::Open { member, .. } => member,
            other => panic!("expected an open, got {other:?}"),
        }
    }

    impl fmt::Debug for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Fake({:?})", self.0.get())
        }
    }

    #[test]
    fn impossible_configs_are_refused() {
        assert_eq!(config(0, 0, 1).validate(), Err(PoolConfigError::NoSessions));
        assert_eq!(config(3, 2, 1).validate(), Err(PoolConfigError::MinAboveMax));
        assert_eq!(config(1, 2, 0).validate(), Err(PoolConfigError::NoStreams));
        assert!(PoolPolicy::<Fake>::new(PoolConfig::default()).is_ok());
    }

    #[test]
    fn warmup_asks_for_min_sessions_once() {
        let now = Instant::now();
        let mut pool = PoolPolicy::<Fake>::new(config(3, 5, 4)).unwrap();
        assert_eq!(pool.dials_wanted(now), 3);
        assert_eq!(pool.dials_wanted(now), 0, "the three count as dialling");
        for _ in 0..3 {
            pool.dial_succeeded(Fake::ready(), now);
        }
        assert_eq!(pool.dials_wanted(now), 0);
        assert_eq!(pool.stats().live, 3);
    }

    #[test]
    fn streams_go_to_the_least_loaded_session() {
        let now = Instant::now();
        let mut pool = PoolPolicy::new(config(2, 2, 10)).unwrap();
        let a = pool.dial_succeeded(Fake::ready(), now);
        let b = pool.dial_succeeded(Fake::ready(), now);
        let picks: Vec<MemberId> = (0..6).map(|_| opened_on(pick(&mut pool, now))).collect();
        assert_eq!(picks.iter().filter(|&&m| m == a).count(), 3);
        assert_eq!(picks.iter().filter(|&&m| m == b).count(), 3);
        // Releasing two of a's makes it the least loaded.
        pool.release(a, now);
        pool.release(a, now);
        assert_eq!(opened_on(pick(&mut pool, now)), a);
        assert_eq!(pool.stats().streams_held, 5);
    }

    #[test]
    fn a_full_pool_dials_one_at_a_time_up_to_the_maximum_then_waits() {
        let now = Instant::now();
        let mut pool = PoolPolicy::new(config(0, 2, 1)).unwrap();
        assert!(matches!(pick(&mut pool, now), Pick::Dial));
        assert!(
            matches!(pick(&mut pool, now), Pick::Wait { until: None }),
            "the next open waits for the dial under way"
        );
        let a = pool.dial_succeeded(Fake::ready(), now);
        assert_eq!(opened_on(pick(&mut pool, now)), a);
        assert!(matches!(pick(&mut pool, now), Pick::Dial), "a is full");
        pool.dial_succeeded(Fake::ready(), now);
        opened_on(pick(&mut pool, now));
        assert!(
            matches!(pick(&mut pool, now), Pick::Wait { until: None }),
            "both full, and two is the maximum"
        );
        pool.release(a, now);
        assert_eq!(opened_on(pick(&mut pool, now)), a);
        assert_eq!(pool.stats().live, 2);
    }

    #[test]
    fn unusable_sessions_are_taken_out_and_detached_ones_skipped() {
        let now = Instant::now();
        let mut pool = PoolPolicy::new(config(0, 4, 10)).unwrap();
        let sessions: Vec<Fake> = (0..4).map(|_| Fake::ready()).collect();
        let ids: Vec<MemberId> = sessions.iter().map(|s| pool.dial_succeeded(s.clone(), now)).collect();
        sessions[0].set(Condition::Unhealthy);
        sessions[1].set(Condition::Draining);
        sessions[2].set(Condition::Detached);
        let mut evicted = Vec::new();
        for _ in 0..3 {
            match pool.pick(now, &mut evicted) {
                Pick::Open { member, .. } => assert_eq!(member, ids[3]),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(evicted.len(), 2);
        assert!(pool.contains(ids[2]), "a detached session stays");
        sessions[2].set(Condition::Ready);
        assert_eq!(opened_on(pick(&mut pool, now)), ids[2], "resumed: usable again");
        sessions[3].set(Condition::Closed);
        pool.evict_unusable();
        let stats = pool.stats();
        assert_eq!((stats.live, stats.evicted, stats.dialled), (1, 3, 4));
    }

    #[test]
    fn a_failed_dial_is_reported_then_retried_after_a_growing_backoff() {
        let start = Instant::now();
        let mut pool = PoolPolicy::<Fake>::new(config(1, 2, 1)).unwrap();
        assert_eq!(pool.dials_wanted(start), 1);
        pool.dial_failed(&io::Error::from(io::ErrorKind::ConnectionRefused), start);
        match pick(&mut pool, start) {
            Pick::Failed(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.dials_wanted(start), 0, "in backoff");
        assert_eq!(pool.next_deadline(), Some(start + Duration::from_millis(100)));
        let later = start + Duration::from_millis(100);
        assert!(matches!(pick(&mut pool, later), Pick::Dial));
        pool.dial_failed(&io::Error::from(io::ErrorKind::ConnectionRefused), later);
        assert_eq!(
            pool.next_deadline(),
            Some(later + Duration::from_millis(200)),
            "doubled"
        );
        let again = later + Duration::from_millis(200);
        assert_eq!(pool.dials_wanted(again), 1);
        pool.dial_succeeded(Fake::ready(), again);
        assert_eq!(opened_on(pick(&mut pool, again)), MemberId(0));
        let stats = pool.stats();
        assert_eq!((stats.dialled, stats.dial_failures), (1, 2));
    }

    #[test]
    fn idle_sessions_beyond_the_minimum_are_trimmed() {
        let start = Instant::now();
        let mut pool = PoolPolicy::new(config(1, 3, 1)).unwrap();
        let a = pool.dial_succeeded(Fake::ready(), start);
        let b = pool.dial_succeeded(Fake::ready(), start);
        let c = pool.dial_succeeded(Fake::ready(), start);
        for _ in 0..3 {
            opened_on(pick(&mut pool, start));
        }
        let idle = start + Duration::from_secs(1);
        pool.release(b, idle);
        pool.release(c, idle + Duration::from_secs(1));
        assert_eq!(pool.next_deadline(), Some(idle + Duration::from_secs(60)));
        assert!(pool.trim_idle(idle + Duration::from_secs(59)).is_empty());
        assert_eq!(pool.trim_idle(idle + Duration::from_secs(61)).len(), 2);
        assert!(pool.contains(a), "the busy one stays");
        pool.release(a, idle);
        assert!(
            pool.trim_idle(idle + Duration::from_secs(3600)).is_empty(),
            "min_sessions stay"
        );
        assert_eq!(pool.stats().trimmed, 2);
    }
}
