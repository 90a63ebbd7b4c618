//! What the session targets share: a config whose limits a short input can
//! reach, and the bounds a session must keep whatever it is fed.

use hawser_core::{Config, Profile, Resumption, Session};

/// Small limits, so that short inputs reach them.
pub fn tight_config(profile: Profile, resumable: bool) -> Config {
    Config {
        profile,
        max_frame_size: 16 * 1024,
        stream_send_buffer: 48 * 1024,
        session_send_buffer: 128 * 1024,
        receive_budget: 8 * 256 * 1024,
        max_stream_window: 1024 * 1024,
        max_streams: 16,
        accept_backlog: 4,
        resumption: (resumable && profile == Profile::Native).then(|| Resumption {
            replay_buffer: 64 * 1024,
            ack_bytes: 16 * 1024,
            ..Resumption::default()
        }),
        ..Config::default()
    }
}

/// The memory bounds the configuration promises.
pub fn assert_bounded(session: &Session, config: &Config) {
    assert!(
        session.buffered_receive() <= session.receive_windows_total(),
        "buffered {} > windows {}",
        session.buffered_receive(),
        session.receive_windows_total()
    );
    assert!(session.receive_windows_total() <= config.receive_budget);
    assert!(session.buffered_send() <= config.session_send_buffer);
    assert!(session.pending_accepts() <= config.accept_backlog);
    assert!(session.stream_count() <= config.max_streams);
    if let Some(resumption) = &config.resumption {
        // The whole unacknowledged tail, control frames included (PROTOCOL.md 12.1).
        let bound = resumption.replay_buffer as u64 + 64 * 1024 + 64;
        assert!(
            session.replay_buffered() <= bound,
            "replay {} > {bound}",
            session.replay_buffered()
        );
    }
}

/// Plays the application: accepts, reads a little, answers on each stream, and
/// drains what the session wants to say.
pub fn react(session: &mut Session, now: hawser_core::Instant, read_max: usize) {
    while let Some(id) = session.accept() {
        let _ = session.stream(id).write(bytes::Bytes::from_static(b"reply"));
    }
    while let Some(event) = session.poll_event() {
        if let hawser_core::Event::Readable(id) = event {
            let _ = session.stream(id).read(read_max);
        }
    }
    while session.poll_transmit(now).is_some() {}
}
