//! Session configuration: every limit has a knob here, with a safe default.

use core::time::Duration;

use crate::frame::Profile;

/// The yamux initial stream window, fixed by the yamux spec.
pub const YAMUX_INITIAL_WINDOW: u32 = 256 * 1024;

/// Which side of the link a session is on; it fixes stream id parity
/// (clients open odd ids, servers even ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that dialled the link; opens odd stream ids.
    Client,
    /// The side that accepted the link; opens even stream ids.
    Server,
}

/// How a session behaves and what it allows the peer. `Config::default()` is a
/// native-profile session with limits fit for a server facing the internet.
///
/// ```
/// use hawser_core::{Config, Profile};
/// use core::time::Duration;
///
/// let config = Config {
///     profile: Profile::Yamux,
///     keepalive_interval: Some(Duration::from_secs(15)),
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The wire profile: [`Profile::Native`] for hawser peers, [`Profile::Yamux`] for
    /// rust-yamux, go-yamux and hashicorp/yamux peers.
    ///
    /// Default: [`Profile::Native`].
    pub profile: Profile,
    /// The receive window each stream starts with. The yamux profile always starts at
    /// 256 KiB (the spec's value) and grants anything above it with a window update
    /// once the stream is open.
    ///
    /// Default: 256 KiB.
    pub initial_window: u32,
    /// The largest receive window auto-tuning may grow one stream to.
    ///
    /// Default: 16 MiB.
    pub max_stream_window: u32,
    /// The session-wide receive budget: the sum of all streams' receive windows never
    /// exceeds it, so the peer can never make this side buffer more payload. A stream
    /// that would not fit is refused (inbound) or blocked (outbound). Received pieces
    /// of 512 bytes or more are kept as slices of the input buffers the caller passed
    /// to `handle_input`, so resident memory also depends on how the caller sizes them.
    ///
    /// Default: 256 MiB.
    pub receive_budget: u64,
    /// The largest Data payload sent in one frame (writes are split at this size),
    /// and in the native profile the largest one accepted.
    ///
    /// Default: 64 KiB.
    pub max_frame_size: u32,
    /// How many streams may be open at once, counting both directions. Peer opens
    /// beyond it are refused; local opens return `Blocked`.
    ///
    /// Default: 512.
    pub max_streams: usize,
    /// How many inbound streams may wait for [`Session::accept`](crate::Session::accept);
    /// more are refused.
    ///
    /// Default: 256.
    pub accept_backlog: usize,
    /// How many locally opened streams may wait for the peer's acknowledgement before
    /// further opens return `Blocked` (yamux's ACK backlog).
    ///
    /// Default: 256.
    pub max_unacknowledged_opens: usize,
    /// Unsent bytes one stream may buffer before writes return `Blocked`.
    ///
    /// Default: 1 MiB.
    pub stream_send_buffer: usize,
    /// Unsent bytes all streams together may buffer before writes return `Blocked`.
    /// Bytes only wait here until the driver frames them (the window limits what is
    /// in flight, not this), so a small bound loses no throughput and keeps the
    /// data in cache: the default is 2 MiB, which ran 100 concurrent bulk streams
    /// about twice as fast on loopback as 32 MiB did.
    ///
    /// Default: 2 MiB.
    pub session_send_buffer: usize,
    /// How often to ping the peer to measure RTT and detect a dead link; `None`
    /// disables keepalive.
    ///
    /// Default: 30 s.
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before it counts as missed.
    ///
    /// Default: 10 s.
    pub ping_timeout: Duration,
    /// How many pings in a row may be missed before the link is declared dead.
    ///
    /// Default: 3.
    pub max_missed_pings: u32,
    /// Liveness from progress: how soon a link that stopped answering is
    /// suspected ([`Event::LinkSuspect`](crate::Event::LinkSuspect)), long
    /// before keepalive declares it dead. `None` turns it off.
    ///
    /// Default: `Some(Liveness::default())` (1 s floor, 4 round trips).
    pub liveness: Option<Liveness>,
    /// How long a locally opened stream may wait for the peer's acknowledgement
    /// before it is reset; `None` waits forever. [`Config::yamux`] sets `None`:
    /// rust-yamux acknowledges a stream only when it first sends on it.
    ///
    /// Default: 30 s (`None` in [`Config::yamux`]).
    pub open_timeout: Option<Duration>,
    /// How long, after this side finished a stream, the peer may go without
    /// sending on it or finishing it before the stream is reset; `None` waits
    /// forever. A peer that keeps sending (a long reply to a finished request) is
    /// never cut off by it.
    ///
    /// Default: 60 s.
    pub close_timeout: Option<Duration>,
    /// How long a go-away drain may last before the remaining streams are reset.
    ///
    /// Default: 30 s.
    pub drain_timeout: Duration,
    /// Native profile: how long to wait for the peer's hello (and, when resuming,
    /// for the server's answer).
    ///
    /// Default: 10 s.
    pub handshake_timeout: Duration,
    /// Native profile: survive the loss of the link (see [`crate::resume`]);
    /// `None` (the default) ends the session when the link is lost. Both sides
    /// must enable it.
    ///
    /// Default: `None`.
    pub resumption: Option<Resumption>,
    /// Budgets against abusive peers.
    ///
    /// Default: [`Limits::default()`].
    pub limits: Limits,
}

/// How soon a silent link is suspected. A link is suspect when something
/// that needs an answer has had none, and nothing else came from the peer
/// either, for longer than the *silence bound*: `rtt_multiple` times the
/// smallest round trip measured on the link (the round trip with short
/// queues), and at least `floor`; a link that has always paused longer
/// between answers (long queues, bursty peers) gets twice its recent longest
/// pause. Two things need an answer: a ping, and a
/// frame sent after the last input (the peer answers data with window
/// updates or acknowledgements, and an open with its acknowledgement). When
/// the link has been silent for half the bound after such a frame, the session
/// sends a ping to ask (a probe). Any input from the peer clears the
/// suspicion ([`Event::LinkResponsive`](crate::Event::LinkResponsive)).
/// The session only reports it: what to do about a suspect link (dial
/// another, for a resumable client) is the driver's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The shortest silence bound.
    ///
    /// Default: 1 s.
    pub floor: Duration,
    /// The silence bound in round trips (of the smallest measured).
    ///
    /// Default: 4.
    pub rtt_multiple: u32,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            floor: Duration::from_secs(1),
            rtt_multiple: 4,
        }
    }
}

impl Liveness {
    /// The silence bound, given the smallest round trip measured so far.
    pub fn silence_bound(&self, min_rtt: Option<Duration>) -> Duration {
        let from_rtt = min_rtt.map_or(Duration::ZERO, |rtt| rtt.saturating_mul(self.rtt_multiple));
        from_rtt.max(self.floor)
    }
}

/// How a resumable session acknowledges, replays and waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumption {
    /// The most unacknowledged bytes kept for replay. Data waits (writes soon
    /// return `Blocked`) once it would take more than fifteen sixteenths of it;
    /// control frames, small and bounded by other limits, use the rest and are
    /// never held back, so acknowledgements can never deadlock.
    ///
    /// Default: 4 MiB.
    pub replay_buffer: usize,
    /// Acknowledge at the latest after this many bytes were received...
    ///
    /// Default: 64 KiB.
    pub ack_bytes: u32,
    /// ...or this long after the first byte not yet acknowledged.
    ///
    /// Default: 20 ms.
    pub ack_delay: Duration,
    /// How long a session may wait for a new link before it expires; its streams
    /// then fail with [`SessionError::Expired`](crate::SessionError::Expired).
    /// A resume does not restart this clock: time spent attached pays back time
    /// spent detached at the same rate, so a session that is detached most of the
    /// time expires even if it is briefly resumed every now and then.
    ///
    /// Default: 30 s.
    pub detached_timeout: Duration,
    /// Server acceptor budget: the most sessions detached at once. When one more
    /// detaches, the one detached longest ends (as if expired).
    ///
    /// Default: 1024.
    pub max_detached_sessions: usize,
    /// Server acceptor budget: the most bytes that detached sessions may hold for
    /// their clients (replay buffers, unsent writes, and received data not yet
    /// read), all together. When a detach takes the total over, the sessions
    /// holding the most end first.
    ///
    /// Default: 256 MiB.
    pub detached_memory: u64,
    /// Server acceptor budget: the most detached sessions whose last link came
    /// from one source (an IPv4 address, or an IPv6 /64). Beyond it, that
    /// source's session detached longest ends, so one source cannot push out
    /// everyone else's.
    ///
    /// Default: 64.
    pub max_detached_per_source: usize,
    /// Server acceptor budget: failed resume attempts allowed per minute from
    /// one source, and per session id. Beyond it, attempts are refused unread
    /// with [`GoAwayCode::RESUME_RATE_LIMITED`](crate::GoAwayCode::RESUME_RATE_LIMITED)
    /// until the minute is over.
    ///
    /// Default: 60.
    pub max_failed_resumes_per_minute: u32,
}

impl Default for Resumption {
    fn default() -> Self {
        Resumption {
            replay_buffer: 4 * 1024 * 1024,
            ack_bytes: 64 * 1024,
            ack_delay: Duration::from_millis(20),
            detached_timeout: Duration::from_secs(30),
            max_detached_sessions: 1024,
            detached_memory: 256 * 1024 * 1024,
            max_detached_per_source: 64,
            max_failed_resumes_per_minute: 60,
        }
    }
}

/// Budgets that bound what a hostile peer can make the session do. Exceeding one is a
/// protocol error: the session sends a go-away with a limit code and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Ping requests the peer may send per second.
    ///
    /// Default: 128.
    pub pings_per_second: u32,
    /// Zero-length frames that change nothing (no payload, no window delta, no
    /// flag with an effect, such as a repeated FIN) the peer may send per second.
    ///
    /// Default: 1024.
    pub empty_frames_per_second: u32,
    /// Stream resets and refused opens the peer may cause per second (open+reset floods).
    ///
    /// Default: 1024.
    pub resets_per_second: u32,
    /// Control replies (pongs, refusals) that may wait for transmission; a peer
    /// that keeps asking without reading our replies exceeds it.
    ///
    /// Default: 1024.
    pub max_pending_control: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pings_per_second: 128,
            empty_frames_per_second: 1024,
            resets_per_second: 1024,
            max_pending_control: 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::Native,
            initial_window: YAMUX_INITIAL_WINDOW,
            max_stream_window: 16 * 1024 * 1024,
            receive_budget: 256 * 1024 * 1024,
            max_frame_size: 64 * 1024,
            max_streams: 512,
            accept_backlog: 256,
            max_unacknowledged_opens: 256,
            stream_send_buffer: 1024 * 1024,
            session_send_buffer: 2 * 1024 * 1024,
            keepalive_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(10),
            max_missed_pings: 3,
            liveness: Some(Liveness::default()),
            open_timeout: Some(Duration::from_secs(30)),
            close_timeout: Some(Duration::from_secs(60)),
            drain_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            resumption: None,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// A yamux-profile configuration: the defaults, without an open timeout.
    pub fn yamux() -> Self {
        Config {
            profile: Profile::Yamux,
            open_timeout: None,
            ..Config::default()
        }
    }

    /// Checks that the values are consistent. [`Session::new`](crate::Session::new)
    /// calls it; it is public so that a program can report a bad configuration early.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::settings::{MAX_MAX_FRAME_SIZE, MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE};
        let min_window = match self.profile {
            Profile::Yamux => YAMUX_INITIAL_WINDOW,
            Profile::Native => MIN_INITIAL_WINDOW,
        };
        if self.initial_window < min_window {
            return Err(ConfigError::new("initial_window", "below the profile's minimum"));
        }
        if self.max_stream_window < self.initial_window {
            return Err(ConfigError::new("max_stream_window", "below initial_window"));
        }
        if self.receive_budget < u64::from(self.initial_window) {
            return Err(ConfigError::new(
                "receive_budget",
                "cannot hold one stream's initial window",
            ));
        }
        if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&self.max_frame_size) {
            return Err(ConfigError::new("max_frame_size", "must be between 16 KiB and 16 MiB"));
        }
        if self.max_streams == 0 {
            return Err(ConfigError::new("max_streams", "must be at least 1"));
        }
        if self.max_unacknowledged_opens == 0 {
            return Err(ConfigError::new("max_unacknowledged_opens", "must be at least 1"));
        }
        if self.stream_send_buffer == 0 || self.session_send_buffer < self.stream_send_buffer {
            return Err(ConfigError::new(
                "session_send_buffer",
                "must be at least stream_send_buffer, which must be non-zero",
            ));
        }
        if self.max_missed_pings == 0 {
            return Err(ConfigError::new("max_missed_pings", "must be at least 1"));
        }
        if self.ping_timeout.is_zero() {
            return Err(ConfigError::new("ping_timeout", "must be non-zero"));
        }
        if let Some(liveness) = &self.liveness {
            if liveness.floor.is_zero() {
                return Err(ConfigError::new("liveness.floor", "must be non-zero"));
            }
            if liveness.rtt_multiple == 0 {
                return Err(ConfigError::new("liveness.rtt_multiple", "must be at least 1"));
            }
        }
        if self.keepalive_interval.is_some_and(|interval| interval.is_zero()) {
            return Err(ConfigError::new(
                "keepalive_interval",
                "must be non-zero (use None to disable)",
            ));
        }
        if let Some(resumption) = &self.resumption {
            if self.profile != Profile::Native {
                return Err(ConfigError::new("resumption", "needs the native profile"));
            }
            if resumption.replay_buffer < MIN_MAX_FRAME_SIZE as usize {
                return Err(ConfigError::new("resumption.replay_buffer", "must be at least 16 KiB"));
            }
            if resumption.ack_bytes == 0 || resumption.ack_bytes as usize > resumption.replay_buffer / 2 {
                return Err(ConfigError::new(
                    "resumption.ack_bytes",
                    "must be non-zero and at most half the replay buffer",
                ));
            }
            if resumption.ack_delay.is_zero() || resumption.detached_timeout.is_zero() {
                return Err(ConfigError::new(
                    "resumption",
                    "ack_delay and detached_timeout must be non-zero",
                ));
            }
            if resumption.max_detached_sessions == 0
                || resumption.max_detached_per_source == 0
                || resumption.detached_memory == 0
                || resumption.max_failed_resumes_per_minute == 0
            {
                return Err(ConfigError::new(
                    "resumption",
                    "max_detached_sessions, max_detached_per_source, detached_memory and \
                     max_failed_resumes_per_minute must be non-zero",
                ));
            }
        }
        if self.limits.max_pending_control == 0 {
            return Err(ConfigError::new("limits.max_pending_control", "must be at least 1"));
        }
        Ok(())
    }
}

/// A configuration value that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl ConfigError {
    const fn new(field: &'static str, problem: &'static str) -> Self {
        ConfigError { field, problem }
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid config: {} {}", self.field, self.problem)
    }
}
