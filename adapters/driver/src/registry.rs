//! The server side of resumption: the registry of resumable sessions that every
//! adapter's acceptor shares, and the budgets that keep what unauthenticated
//! clients can make it hold bounded.
//!
//! A detached session holds its replay buffer and unsent writes for a client that
//! may never come back, and anyone who completes a handshake can make one. So the
//! registry bounds detached sessions in number, in bytes held, and per source;
//! beyond a budget it ends the session that costs the most (or has waited
//! longest). Failed resume attempts are budgeted per source and per session id,
//! and refusals are logged as periodic summaries, not one line each.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_core::resume::{ResumeRefusal, ResumeRequest, ResumeToken, Ticket};
use hawser_core::Resumption;

use crate::link::LinkSource;
use crate::pump::LinkSide;
use crate::resume::entropy;
use crate::shared::Shared;

/// Where a link came from, for the per-source budgets: an IPv4 address, or the
/// /64 prefix of an IPv6 address (one host usually owns a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceAddr(IpAddr);

impl SourceAddr {
    /// The source of a link from `addr`.
    pub fn of(addr: IpAddr) -> SourceAddr {
        match addr {
            IpAddr::V4(v4) => SourceAddr(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceAddr(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    SourceAddr(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// A one-place mailbox through which an acceptor hands a session its new link.
struct LinkSlot<L> {
    inner: Arc<Mutex<SlotInner<L>>>,
}

struct SlotInner<L> {
    link: Option<L>,
    waker: Option<Waker>,
}

impl<L> Clone for LinkSlot<L> {
    fn clone(&self) -> Self {
        LinkSlot {
            inner: self.inner.clone(),
        }
    }
}

impl<L> LinkSlot<L> {
    fn new() -> Self {
        LinkSlot {
            inner: Arc::new(Mutex::new(SlotInner {
                link: None,
                waker: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotInner<L>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, link: L) {
        let mut inner = self.lock();
        inner.link = Some(link);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }
}

/// A registered server session's end of the registry: the driver takes new links
/// from it (it is the session's [`LinkSource`]), it reports the session's detach
/// for the budgets, and dropping it (the driver is done) removes the session
/// from the registry.
pub struct SessionSlot<L> {
    slot: LinkSlot<L>,
    registry: Weak<Mutex<RegistryInner<L>>>,
    shared: Weak<Mutex<Shared>>,
    id: u64,
    /// Whether this detach has been reported.
    reported: bool,
}

impl<L> SessionSlot<L> {
    /// Tells the registry that the session has just detached, holding what it
    /// holds; the budgets may end it or others.
    fn report_detached(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let held = {
            let guard = Shared::lock(&shared);
            let session = guard.session_ref();
            if !session.is_detached() || session.is_closed() {
                return;
            }
            // What it keeps for a client that may never return: the replay
            // buffer, writes not yet sent, and data received but not yet read.
            session.replay_buffered() + session.buffered_send() as u64 + session.buffered_receive()
        };
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let shed = lock(&registry).detached(self.id, held, Instant::now());
        shed_all(shed);
    }
}

impl<L> LinkSource<L> for SessionSlot<L> {
    fn poll_link(&mut self, cx: &mut Context<'_>) -> Poll<Option<L>> {
        {
            let mut inner = self.slot.lock();
            if let Some(link) = inner.link.take() {
                self.reported = false;
                return Poll::Ready(Some(link));
            }
            inner.waker = Some(cx.waker().clone());
        }
        // Polled only while detached: the first poll of each detach reports it.
        if !self.reported {
            self.reported = true;
            self.report_detached();
        }
        Poll::Pending
    }
}

impl<L> Drop for SessionSlot<L> {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            lock(&registry).remove(self.id);
        }
    }
}

struct Entry<L> {
    shared: Weak<Mutex<Shared>>,
    slot: LinkSlot<L>,
    source: Option<SourceAddr>,
}

/// A detached session, as the budgets see it.
#[derive(Clone, Copy)]
struct Detached {
    /// Detach order: a smaller number has waited longer.
    order: u64,
    held: u64,
    source: Option<SourceAddr>,
}

/// Failures counted over a fixed minute.
#[derive(Clone, Copy)]
struct FailureWindow {
    started: Instant,
    failures: u32,
}

const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The most sources and ids whose failures are remembered; when full, windows
/// that are over go, and if none are, all of them (rate limiting then restarts,
/// which the per-source budget keeps from being a way around it).
const MAX_FAILURE_WINDOWS: usize = 16 * 1024;
/// How often refusals and shed sessions are summarised in the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

struct Failures {
    windows: HashMap<FailureKey, FailureWindow>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum FailureKey {
    SourceAddr(SourceAddr),
    Id(u64),
}

impl Failures {
    fn exhausted(&self, key: FailureKey, limit: u32, now: Instant) -> bool {
        self.windows
            .get(&key)
            .is_some_and(|w| now.duration_since(w.started) < FAILURE_WINDOW && w.failures >= limit)
    }

    fn count(&mut self, key: FailureKey, now: Instant) {
        if self.windows.len() >= MAX_FAILURE_WINDOWS && !self.windows.contains_key(&key) {
            self.windows
                .retain(|_, w| now.duration_since(w.started) < FAILURE_WINDOW);
            if self.windows.len() >= MAX_FAILURE_WINDOWS {
                self.windows.clear();
            }
        }
        let window = self.windows.entry(key).or_insert(FailureWindow {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= FAILURE_WINDOW {
            *window = FailureWindow {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

/// Counters for the periodic log summary.
#[derive(Default)]
struct Report {
    since: Option<Instant>,
    refused: u64,
    rate_limited: u64,
    shed: u64,
}

impl Report {
    fn note(&mut self, now: Instant) {
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) < REPORT_EVERY {
            return;
        }
        if self.refused + self.rate_limited + self.shed > 0 {
            tracing::info!(
                refused = self.refused,
                rate_limited = self.rate_limited,
                shed = self.shed,
                seconds = now.duration_since(since).as_secs(),
                "resumption: refused attempts and sessions ended by the detached budgets"
            );
        }
        *self = Report {
            since: Some(now),
            ..Report::default()
        };
    }
}

/// What a resumable server's acceptor holds, and what its budgets have done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptorStats {
    /// Resumable sessions alive (attached or detached).
    pub sessions: usize,
    /// Of those, detached: waiting for their client to come back.
    pub detached: usize,
    /// Bytes the detached sessions hold for their clients (replay buffers,
    /// unsent writes, received data not yet read), all together; bounded by
    /// `Resumption::detached_memory`.
    pub detached_held: u64,
    /// Detached sessions the budgets have ended, in all.
    pub shed: u64,
    /// Resume attempts refused (unknown id, wrong token, bad offset), in all.
    pub refused: u64,
    /// Resume attempts refused unread by the failed-attempt budget, in all.
    pub rate_limited: u64,
}

struct RegistryInner<L> {
    shed_total: u64,
    refused_total: u64,
    rate_limited_total: u64,
    budgets: Resumption,
    sessions: HashMap<u64, Entry<L>>,
    /// The detached sessions, with what they hold and where they came from.
    detached: HashMap<u64, Detached>,
    held_total: u64,
    /// Detaches so far, to order them.
    detach_count: u64,
    detached_per_source: HashMap<SourceAddr, usize>,
    failures: Failures,
    report: Report,
}

fn lock<L>(inner: &Mutex<RegistryInner<L>>) -> MutexGuard<'_, RegistryInner<L>> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ends sessions the budgets shed. Called with no registry or session lock held.
fn shed_all(shed: Vec<Weak<Mutex<Shared>>>) {
    for shared in shed.into_iter().filter_map(|weak| weak.upgrade()) {
        Shared::lock(&shared).change_now(hawser_core::Session::give_up);
    }
}

impl<L> RegistryInner<L> {
    fn remove(&mut self, id: u64) {
        self.sessions.remove(&id);
        self.forget_detached(id);
    }

    fn forget_detached(&mut self, id: u64) {
        let Some(detached) = self.detached.remove(&id) else {
            return;
        };
        self.held_total -= detached.held;
        if let Some(source) = detached.source {
            if let Some(count) = self.detached_per_source.get_mut(&source) {
                *count -= 1;
                if *count == 0 {
                    self.detached_per_source.remove(&source);
                }
            }
        }
    }

    /// Session `id` detached holding `held` bytes: applies the budgets and
    /// returns the sessions to end (it may be among them).
    fn detached(&mut self, id: u64, held: u64, now: Instant) -> Vec<Weak<Mutex<Shared>>> {
        let Some(entry) = self.sessions.get(&id) else {
            return Vec::new();
        };
        let source = entry.source;
        self.forget_detached(id);
        self.detach_count += 1;
        let order = self.detach_count;
        self.detached.insert(id, Detached { order, held, source });
        self.held_total += held;
        if let Some(source) = source {
            *self.detached_per_source.entry(source).or_insert(0) += 1;
        }
        let mut shed = Vec::new();
        if let Some(source) = source {
            while self.detached_per_source.get(&source).copied().unwrap_or(0) > self.budgets.max_detached_per_source {
                let oldest = self.pick(|d| d.source == Some(source), |d| std::cmp::Reverse(d.order));
                self.shed(oldest, &mut shed);
            }
        }
        while self.detached.len() > self.budgets.max_detached_sessions {
            let oldest = self.pick(|_| true, |d| std::cmp::Reverse(d.order));
            self.shed(oldest, &mut shed);
        }
        while self.held_total > self.budgets.detached_memory {
            let largest = self.pick(|_| true, |d| (d.held, std::cmp::Reverse(d.order)));
            self.shed(largest, &mut shed);
        }
        if !shed.is_empty() {
            tracing::debug!(count = shed.len(), "detached budgets exceeded; ending sessions");
            self.report.shed += shed.len() as u64;
            self.shed_total += shed.len() as u64;
            self.report.note(now);
        }
        shed
    }

    /// The detached session that `keep` admits with the greatest `key`.
    fn pick<K: Ord>(&self, keep: impl Fn(&Detached) -> bool, key: impl Fn(&Detached) -> K) -> Option<u64> {
        self.detached
            .iter()
            .filter(|(_, d)| keep(d))
            .max_by_key(|(_, d)| key(d))
            .map(|(&id, _)| id)
    }

    fn shed(&mut self, id: Option<u64>, shed: &mut Vec<Weak<Mutex<Shared>>>) {
        let Some(id) = id else {
            return;
        };
        if let Some(entry) = self.sessions.remove(&id) {
            shed.push(entry.shared);
        }
        self.forget_detached(id);
    }

    fn refused(&mut self, refusal: ResumeRefusal, id: u64, source: Option<SourceAddr>, now: Instant) {
        tracing::debug!(%refusal, "resume refused");
        if refusal == ResumeRefusal::RateLimited {
            self.report.rate_limited += 1;
            self.rate_limited_total += 1;
        } else {
            self.report.refused += 1;
            self.refused_total += 1;
            self.failures.count(FailureKey::Id(id), now);
            if let Some(source) = source {
                self.failures.count(FailureKey::SourceAddr(source), now);
            }
        }
        self.report.note(now);
    }
}

/// The server side's registry of resumable sessions, by ticket id: it issues
/// tickets to new sessions, routes resume requests to them, and applies the
/// detached-session and failure budgets of the sessions' [`Resumption`] config.
pub struct Registry<L> {
    inner: Arc<Mutex<RegistryInner<L>>>,
}

impl<L> Registry<L> {
    /// The registry of an acceptor whose sessions use `config`: checks that
    /// `config` can make resumable sessions, and applies its budgets.
    pub fn for_config(config: &hawser_core::Config) -> io::Result<Self> {
        crate::resume::check_resumable(config)?;
        Ok(Registry::new(config.resumption.clone().unwrap_or_default()))
    }

    /// A registry applying the budgets in `budgets`.
    pub fn new(budgets: Resumption) -> Self {
        Registry {
            inner: Arc::new(Mutex::new(RegistryInner {
                budgets,
                shed_total: 0,
                refused_total: 0,
                rate_limited_total: 0,
                sessions: HashMap::new(),
                detached: HashMap::new(),
                held_total: 0,
                detach_count: 0,
                detached_per_source: HashMap::new(),
                failures: Failures {
                    windows: HashMap::new(),
                },
                report: Report::default(),
            })),
        }
    }

    /// What the registry holds now.
    pub fn stats(&self) -> AcceptorStats {
        let inner = lock(&self.inner);
        AcceptorStats {
            sessions: inner.sessions.len(),
            detached: inner.detached.len(),
            detached_held: inner.held_total,
            shed: inner.shed_total,
            refused: inner.refused_total,
            rate_limited: inner.rate_limited_total,
        }
    }

    /// Registers a new server session whose link came from `source`: gives it a
    /// ticket (a random id and a random token) and returns the slot its driver
    /// takes new links from.
    pub fn register(&self, side: &LinkSide, source: Option<SourceAddr>) -> io::Result<SessionSlot<L>> {
        let shared = side.shared();
        let token = ResumeToken::from_bytes(entropy()?);
        let mut inner = lock(&self.inner);
        // Ids are random, so that one tells nothing about others; 2^64 of them
        // make a collision rare, and a collision only means another draw.
        let id = loop {
            let bytes = entropy()?;
            let id = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
            if id != 0 && !inner.sessions.contains_key(&id) {
                break id;
            }
        };
        Shared::lock(shared).session().set_resume_ticket(Ticket { id, token });
        let slot = LinkSlot::new();
        inner.sessions.insert(
            id,
            Entry {
                shared: Arc::downgrade(shared),
                slot: slot.clone(),
                source,
            },
        );
        Ok(SessionSlot {
            slot,
            registry: Arc::downgrade(&self.inner),
            shared: Arc::downgrade(shared),
            id,
            reported: false,
        })
    }

    /// A new server session for a link from `source` that opened with a hello:
    /// registered, and fed the bytes read so far. Returns the session and the
    /// slot its driver takes later links from.
    pub fn start_session(
        &self,
        config: hawser_core::Config,
        first: Bytes,
        source: Option<SourceAddr>,
    ) -> io::Result<(LinkSide, SessionSlot<L>)> {
        let side = LinkSide::new(hawser_core::Role::Server, config)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let slot = self.register(&side, source)?;
        let mut guard = Shared::lock(side.shared());
        let now = guard.now();
        guard.session().handle_input(now, first);
        guard.dispatch_events();
        drop(guard);
        Ok((side, slot))
    }

    /// Routes a resume request that arrived on `link` from `source` (with `rest`,
    /// the bytes read after the request) to its session. On success the session
    /// has the new link; on refusal, write [`ResumeRefusal::frame`] to the link
    /// and close it. An unknown id, a wrong token and an ended session are one
    /// refusal; a source or id with too many recent failures is refused unread.
    pub fn resume(
        &self,
        request: &ResumeRequest,
        link: L,
        rest: Bytes,
        source: Option<SourceAddr>,
    ) -> Result<(), (ResumeRefusal, L)> {
        let id = request.ticket.id;
        let now = Instant::now();
        let found = {
            let mut inner = lock(&self.inner);
            let limit = inner.budgets.max_failed_resumes_per_minute;
            let limited = inner.failures.exhausted(FailureKey::Id(id), limit, now)
                || source.is_some_and(|s| inner.failures.exhausted(FailureKey::SourceAddr(s), limit, now));
            if limited {
                inner.refused(ResumeRefusal::RateLimited, id, source, now);
                return Err((ResumeRefusal::RateLimited, link));
            }
            inner
                .sessions
                .get(&id)
                .and_then(|entry| Some((entry.shared.upgrade()?, entry.slot.clone())))
        };
        let outcome = match found {
            None => Err(ResumeRefusal::NoSuchSession),
            Some((shared, slot)) => match entropy() {
                Err(_) => Err(ResumeRefusal::NoSuchSession),
                Ok(bytes) => {
                    let mut guard = Shared::lock(&shared);
                    let now = guard.now();
                    match guard
                        .session()
                        .handle_resume(now, request, ResumeToken::from_bytes(bytes))
                    {
                        Err(refusal) => Err(refusal),
                        Ok(()) => {
                            if !rest.is_empty() {
                                guard.session().handle_input(now, rest);
                            }
                            guard.dispatch_events();
                            // It may have had a link still (a takeover): the
                            // driver must drop that one and take this.
                            guard.wake_driver();
                            drop(guard);
                            Ok(slot)
                        }
                    }
                }
            },
        };
        let mut inner = lock(&self.inner);
        match outcome {
            Ok(slot) => {
                inner.forget_detached(id);
                if let (Some(entry), Some(source)) = (inner.sessions.get_mut(&id), source) {
                    entry.source = Some(source);
                }
                drop(inner);
                slot.put(link);
                Ok(())
            }
            Err(refusal) => {
                inner.refused(refusal, id, source, now);
                Err((refusal, link))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::SharedRef;
    use std::net::Ipv6Addr;

    fn config() -> hawser_core::Config {
        hawser_core::Config {
            resumption: Some(Resumption::default()),
            ..hawser_core::Config::default()
        }
    }

    fn budgets(edit: impl FnOnce(&mut Resumption)) -> Resumption {
        let mut budgets = Resumption::default();
        edit(&mut budgets);
        budgets
    }

    /// What a resumable client sends first.
    fn client_hello() -> Bytes {
        let mut client =
            hawser_core::Session::new(hawser_core::Role::Client, config(), hawser_core::Instant::ZERO).expect("valid");
        let mut hello = Vec::new();
        while let Some(transmit) = client.poll_transmit(hawser_core::Instant::ZERO) {
            hello.extend_from_slice(transmit.header());
            hello.extend_from_slice(transmit.payload());
        }
        Bytes::from(hello)
    }

    fn poll_slot(slot: &mut SessionSlot<()>) -> Poll<Option<()>> {
        slot.poll_link(&mut Context::from_waker(Waker::noop()))
    }

    /// A server session from `source` whose link is lost, holding `hold` bytes
    /// of unsent writes, reported to the registry as its driver would.
    fn detached(registry: &Registry<()>, source: Option<SourceAddr>, hold: usize) -> (SharedRef, SessionSlot<()>) {
        let (side, mut slot) = registry
            .start_session(config(), client_hello(), source)
            .expect("a session");
        let shared = side.shared().clone();
        {
            let mut guard = Shared::lock(&shared);
            let now = guard.now();
            guard.session().handle_link_lost(now);
            assert!(guard.session_ref().is_detached());
            if hold > 0 {
                let id = guard.session().open(now).expect("room for a stream");
                let written = guard.session().stream(id).write(Bytes::from(vec![7; hold]));
                assert_eq!(written, Ok(hold));
            }
            guard.dispatch_events();
        }
        assert!(poll_slot(&mut slot).is_pending());
        (shared, slot)
    }

    fn expired(shared: &SharedRef) -> bool {
        Shared::lock(shared).session_ref().close_reason() == Some(hawser_core::SessionError::Expired)
    }

    fn source(last: u8) -> Option<SourceAddr> {
        Some(SourceAddr::of([192, 0, 2, last].into()))
    }

    /// A resume request with the session's own ticket.
    fn own_request(shared: &SharedRef) -> ResumeRequest {
        let ticket = Shared::lock(shared).session_ref().resume_ticket().expect("a ticket");
        ResumeRequest { ticket, received: 0 }
    }

    #[test]
    fn beyond_the_detached_count_the_longest_detached_end() {
        let registry = Registry::new(budgets(|b| b.max_detached_sessions = 3));
        let sessions: Vec<_> = (0..5)
            .map(|i| {
                let session = detached(&registry, source(i), 0);
                let request = own_request(&session.0);
                (session, request)
            })
            .collect();
        let ended: Vec<bool> = sessions.iter().map(|((shared, _), _)| expired(shared)).collect();
        assert_eq!(ended, [true, true, false, false, false]);
        // A shed session is gone: its client's resume is refused like any other.
        let refused = registry.resume(&sessions[0].1, (), Bytes::new(), source(0));
        assert_eq!(refused.err().map(|e| e.0), Some(ResumeRefusal::NoSuchSession));
        assert_eq!((registry.stats().sessions, registry.stats().detached), (3, 3));
        assert_eq!(registry.stats().shed, 2);
    }

    #[test]
    fn beyond_the_memory_budget_the_largest_end_first() {
        let registry = Registry::new(budgets(|b| b.detached_memory = 100_000));
        let small = detached(&registry, source(1), 10_000);
        let large = detached(&registry, source(2), 60_000);
        let medium = detached(&registry, source(3), 20_000);
        assert!(!expired(&large.0), "within the budget so far");
        let last = detached(&registry, source(4), 30_000);
        assert!(expired(&large.0));
        assert!(!expired(&small.0) && !expired(&medium.0) && !expired(&last.0));
        let held = registry.stats().detached_held;
        assert!(held <= 100_000, "{held}");
        // What an ended session held is no longer counted.
        assert!(held >= 60_000, "{held}");
    }

    #[test]
    fn one_source_cannot_push_out_the_others() {
        let registry = Registry::new(budgets(|b| {
            b.max_detached_per_source = 2;
            b.max_detached_sessions = 4;
        }));
        let legit = detached(&registry, source(9), 0);
        let flood: Vec<_> = (0..20).map(|_| detached(&registry, source(1), 0)).collect();
        assert!(!expired(&legit.0), "the other source's session is untouched");
        assert_eq!(flood.iter().filter(|(shared, _)| !expired(shared)).count(), 2);
        // The legitimate client resumes while the flood is shed.
        let request = own_request(&legit.0);
        assert!(registry.resume(&request, (), Bytes::new(), source(9)).is_ok());
        assert!(!Shared::lock(&legit.0).session_ref().is_detached());
    }

    #[test]
    fn a_resumed_session_no_longer_counts_as_detached() {
        let registry = Registry::new(Resumption::default());
        let (shared, _slot) = detached(&registry, source(1), 5_000);
        assert_eq!((registry.stats().sessions, registry.stats().detached), (1, 1));
        assert!(registry.stats().detached_held >= 5_000);
        let request = own_request(&shared);
        assert!(registry.resume(&request, (), Bytes::new(), source(2)).is_ok());
        assert_eq!((registry.stats().sessions, registry.stats().detached), (1, 0));
        assert_eq!(registry.stats().detached_held, 0);
    }

    #[test]
    fn failed_resumes_are_rate_limited_per_source_and_per_id() {
        let registry = Registry::new(budgets(|b| b.max_failed_resumes_per_minute = 3));
        let (shared, _slot) = detached(&registry, source(1), 0);
        let mut wrong = own_request(&shared);
        wrong.ticket.token = ResumeToken::from_bytes([0; 16]);
        let refusal =
            |request: &ResumeRequest, from| registry.resume(request, (), Bytes::new(), from).err().map(|e| e.0);
        for _ in 0..3 {
            assert_eq!(refusal(&wrong, source(66)), Some(ResumeRefusal::NoSuchSession));
        }
        // That source is out of attempts, whatever it asks for.
        let mut elsewhere = wrong;
        elsewhere.ticket.id ^= 1;
        assert_eq!(refusal(&elsewhere, source(66)), Some(ResumeRefusal::RateLimited));
        // And so is that id, from anywhere: guessing its token is cut short.
        assert_eq!(refusal(&wrong, source(67)), Some(ResumeRefusal::RateLimited));
        assert_eq!(
            refusal(&own_request(&shared), source(1)),
            Some(ResumeRefusal::RateLimited)
        );
        // Other ids from other sources are answered as usual.
        assert_eq!(refusal(&elsewhere, source(68)), Some(ResumeRefusal::NoSuchSession));
        let stats = registry.stats();
        assert_eq!((stats.refused, stats.rate_limited), (4, 3));
    }

    #[test]
    fn sessions_leave_the_registry_when_their_driver_lets_go() {
        let registry: Registry<()> = Registry::new(Resumption::default());
        let mut kept = Vec::new();
        for round in 0..1000 {
            let side = LinkSide::new(hawser_core::Role::Server, config()).expect("valid config");
            let slot = registry.register(&side, None).expect("entropy");
            if round % 10 == 0 {
                kept.push((side, slot));
            }
        }
        assert_eq!((registry.stats().sessions, registry.stats().detached), (100, 0));
    }

    #[test]
    fn ids_are_random_not_counted() {
        let registry: Registry<()> = Registry::new(Resumption::default());
        let ids: Vec<u64> = (0..4)
            .map(|_| {
                let side = LinkSide::new(hawser_core::Role::Server, config()).expect("valid config");
                let _slot = registry.register(&side, None).expect("entropy");
                let id = Shared::lock(side.shared()).session_ref().resume_ticket().map(|t| t.id);
                id.expect("a ticket")
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0].abs_diff(w[1]) > 1000), "{ids:?}");
    }

    #[test]
    fn an_ipv6_source_is_its_64_bit_prefix() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().expect("an address");
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().expect("an address");
        assert_eq!(SourceAddr::of(a.into()), SourceAddr::of(b.into()));
        assert_ne!(SourceAddr::of(a.into()), SourceAddr::of(c.into()));
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().expect("an address");
        assert_eq!(SourceAddr::of(mapped.into()), SourceAddr::of([127, 0, 0, 1].into()));
    }
}
