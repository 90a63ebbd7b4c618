//! The scenarios every adapter must pass, written once against [`Harness`].
//! Each returns `Err` with a reason instead of panicking, so that the runner can
//! name the scenario.

use std::io;
use std::time::Duration;

use hawser_core::frame::{Flags, FrameType, Header};
use hawser_core::{Config, GoAwayCode, Profile, ResetCode, Role, SessionError};

use crate::harness::{read_to_end, Harness, HarnessSession, HarnessStream, RawLink};
use crate::rng::Rng;

type Outcome = Result<(), String>;

pub(crate) fn fail(context: &str) -> impl Fn(io::Error) -> String + '_ {
    move |err| format!("{context}: {err} ({:?})", err.kind())
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Rng::new(seed).fill(&mut out);
    out
}

/// Serves echo on every inbound stream of `session` until it closes.
async fn echo_server<H: Harness>(session: H::Session) {
    let mut tasks = Vec::new();
    while let Some(mut stream) = session.accept().await {
        tasks.push(H::spawn(async move {
            if let Ok(bytes) = read_to_end(&mut stream).await {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.finish().await;
            }
        }));
    }
    for task in tasks {
        task.await;
    }
}

async fn round_trip<S: HarnessSession>(session: &S, payload: &[u8]) -> Outcome {
    let mut stream = session.open().await.map_err(fail("open"))?;
    stream.write_all(payload).await.map_err(fail("write"))?;
    stream.finish().await.map_err(fail("finish"))?;
    let back = read_to_end(&mut stream).await.map_err(fail("read"))?;
    if back != payload {
        return Err(format!("echo returned {} bytes, sent {}", back.len(), payload.len()));
    }
    Ok(())
}

/// One stream, echoed.
pub async fn echo<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let serving = H::spawn(echo_server::<H>(server.clone()));
    round_trip(&client, b"hello, hawser").await?;
    round_trip(&client, &data(1, 1 << 20)).await?;
    client.close(GoAwayCode::NORMAL);
    serving.await;
    Ok(())
}

/// 100 streams at once, each sending 64 KiB and reading its echo.
pub async fn hundred_streams_both_ways_with_checksums<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let serving = H::spawn(echo_server::<H>(server.clone()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let client = client.clone();
        let done = done_tx.clone();
        tasks.push(H::spawn(async move {
            let _ = done.send(round_trip(&client, &data(i, 64 * 1024)).await);
        }));
    }
    for task in tasks {
        task.await;
    }
    drop(done_tx);
    let results: Vec<Outcome> = done_rx.iter().collect();
    if results.len() != 100 {
        return Err(format!("{} of 100 streams reported", results.len()));
    }
    results.into_iter().collect::<Outcome>()?;
    client.close(GoAwayCode::NORMAL);
    serving.await;
    Ok(())
}

/// The client finishes; the server still answers on the same stream.
pub async fn half_close<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    stream.write_all(b"question").await.map_err(fail("write"))?;
    stream.finish().await.map_err(fail("finish"))?;
    let mut inbound = server.accept().await.ok_or("no inbound stream")?;
    let question = read_to_end(&mut inbound).await.map_err(fail("server read"))?;
    if question != b"question" {
        return Err("server read the wrong bytes".into());
    }
    inbound
        .write_all(b"answer after your FIN")
        .await
        .map_err(fail("server write"))?;
    inbound.finish().await.map_err(fail("server finish"))?;
    let answer = read_to_end(&mut stream).await.map_err(fail("client read"))?;
    if answer != b"answer after your FIN" {
        return Err("client read the wrong bytes".into());
    }
    Ok(())
}

/// A reset with a code arrives at the peer as an error carrying that code.
pub async fn reset_code_reaches_the_peer<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    stream.write_all(b"x").await.map_err(fail("write"))?;
    let inbound = server.accept().await.ok_or("no inbound stream")?;
    inbound.reset(ResetCode(0x1234));
    let err = read_until_reset(&mut stream).await?;
    if err.kind() != io::ErrorKind::ConnectionReset {
        return Err(format!("reset read as {:?}", err.kind()));
    }
    if hawser_driver::reset_code(&err) != Some(ResetCode(0x1234)) {
        return Err(format!("the error does not carry the code: {err:?}"));
    }
    // Writes on the reset stream report the same code.
    let err = loop {
        match stream.write_all(b"more").await {
            Ok(()) => H::sleep(Duration::from_millis(5)).await,
            Err(err) => break err,
        }
    };
    if hawser_driver::reset_code(&err) != Some(ResetCode(0x1234)) {
        return Err(format!("a write after the reset does not carry the code: {err:?}"));
    }
    Ok(())
}

/// Reads `stream` until an operation fails, as a reset makes it.
async fn read_until_reset<S: HarnessStream>(stream: &mut S) -> Result<io::Error, String> {
    let mut buf = [0u8; 16];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return Err("read end-of-stream instead of the reset".into()),
            Ok(_) => continue,
            Err(err) => return Ok(err),
        }
    }
}

/// A reset and a go-away with reasons (native profile): the peer's read error
/// carries the code and the reason, and its control gives the go-away's reason.
pub async fn reasons_reach_the_peer<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    stream.write_all(b"GET /missing").await.map_err(fail("write"))?;
    let inbound = server.accept().await.ok_or("no inbound stream")?;
    inbound.reset_with_reason(ResetCode(0x404), "no such file: /missing");
    let err = read_until_reset(&mut stream).await?;
    let got = (hawser_driver::reset_code(&err), hawser_driver::reset_reason(&err));
    if got != (Some(ResetCode(0x404)), Some("no such file: /missing")) {
        return Err(format!("the error does not carry code and reason: {err:?}"));
    }
    server
        .control()
        .go_away_with_reason(GoAwayCode::NORMAL, "restarting")
        .map_err(fail("go away"))?;
    for _ in 0..500 {
        if let Some(reason) = client.control().peer_go_away_reason() {
            return match reason.as_str() {
                "restarting" => Ok(()),
                other => Err(format!("go-away reason {other:?}")),
            };
        }
        H::sleep(Duration::from_millis(10)).await;
    }
    Err("no go-away reason within 5 s".into())
}

/// A stream whose handle is dropped while the peer keeps sending is drained
/// for a while, then reset with `CANCEL`: the peer's writes fail with that
/// code instead of going on forever, and the session carries on.
pub async fn a_dropped_stream_whose_peer_keeps_sending_is_reset<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    stream.write_all(b"download").await.map_err(fail("write"))?;
    let mut inbound = server.accept().await.ok_or("no inbound stream")?;
    let serving = H::spawn(echo_server::<H>(server.clone()));
    let mut first = [0u8; 8];
    let mut got = 0;
    while got < first.len() {
        match inbound.read(&mut first[got..]).await.map_err(fail("server read"))? {
            0 => return Err("the request ended early".into()),
            n => got += n,
        }
    }
    let mut partial = [0u8; 1024];
    let pusher = async move {
        let chunk = data(9, 64 * 1024);
        let mut pushed = 0u64;
        loop {
            match inbound.write_all(&chunk).await {
                Ok(()) => pushed += chunk.len() as u64,
                Err(err) => return (pushed, err),
            }
            if pushed > 256 * 1024 * 1024 {
                return (pushed, io::Error::other("never reset"));
            }
        }
    };
    let ending = std::sync::Arc::new(std::sync::Mutex::new(None));
    let pushed_to = ending.clone();
    let pushing = H::spawn(async move {
        let ended = pusher.await;
        *pushed_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(ended);
    });
    // Read a little of the download, then drop the stream.
    let n = stream.read(&mut partial).await.map_err(fail("client read"))?;
    if n == 0 {
        return Err("the download ended at once".into());
    }
    drop(stream);
    pushing.await;
    let ended = ending.lock().unwrap_or_else(|p| p.into_inner()).take();
    let (pushed, err) = ended.ok_or("the pushing task ended without a result")?;
    if hawser_driver::reset_code(&err) != Some(ResetCode::CANCEL) {
        return Err(format!(
            "after {pushed} bytes the push ended with {err:?}, not a CANCEL reset"
        ));
    }
    round_trip(&client, b"still here").await?;
    drop(client);
    drop(server);
    serving.await;
    Ok(())
}

/// One stream's reader stops; another stream moves 4 MiB; memory stays bounded.
pub async fn slow_reader_does_not_stop_other_streams<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let mut stalled = client.open().await.map_err(fail("open"))?;
    stalled.write_all(b"wake up").await.map_err(fail("write"))?;
    let _stalled_inbound = server.accept().await.ok_or("no inbound stream")?;
    // Fill the stalled stream's window (and more) from a task that will block.
    let filler = H::spawn(async move {
        let _ = stalled.write_all(&vec![7u8; 2 << 20]).await;
    });
    let payload = data(5, 4 << 20);
    let mut flowing = client.open().await.map_err(fail("open second"))?;
    let mut inbound = server.accept().await.ok_or("no second inbound stream")?;
    let expected = payload.clone();
    let reader = H::spawn(async move {
        match read_to_end(&mut inbound).await {
            Ok(bytes) if bytes == expected => {}
            Ok(bytes) => panic!("flowing stream delivered {} bytes", bytes.len()),
            Err(err) => panic!("flowing stream failed: {err}"),
        }
    });
    flowing.write_all(&payload).await.map_err(fail("write flowing"))?;
    flowing.finish().await.map_err(fail("finish flowing"))?;
    reader.await;
    let held = server.buffered_receive();
    if held > 256 * 1024 {
        return Err(format!("the stalled stream made the server buffer {held} bytes"));
    }
    client.close(GoAwayCode::NORMAL);
    filler.await;
    Ok(())
}

/// Beyond the accept backlog, the opener sees its stream refused.
pub async fn backlog_overflow_is_refused<H: Harness>() -> Outcome {
    let server_config = Config {
        accept_backlog: 2,
        ..Config::default()
    };
    let (client, _server) = H::pair(Config::default(), server_config)
        .await
        .map_err(fail("connect"))?;
    let mut refused = 0;
    for _ in 0..4 {
        let mut stream = client.open().await.map_err(fail("open"))?;
        // The refusal may already be back by the time the write happens.
        match stream.write_all(b"knock").await {
            Ok(()) => {}
            Err(err) if hawser_driver::reset_code(&err) == Some(ResetCode::REFUSED) => {
                refused += 1;
                continue;
            }
            Err(err) => return Err(fail("write")(err)),
        }
        let mut buf = [0u8; 1];
        // Nobody accepts: the first two wait in the backlog, the rest are refused.
        let outcome = {
            let read = stream.read(&mut buf);
            let timeout = H::sleep(Duration::from_millis(500));
            race(read, timeout).await
        };
        if let Some(Err(err)) = outcome {
            if err.kind() == io::ErrorKind::ConnectionRefused
                && hawser_driver::reset_code(&err) == Some(ResetCode::REFUSED)
            {
                refused += 1;
            } else {
                return Err(format!("unexpected error {err}"));
            }
        }
    }
    if refused != 2 {
        return Err(format!("{refused} of 4 opens refused, expected 2"));
    }
    Ok(())
}

/// Over the peer's stream limit, the opener sees a refusal (yamux, which has no
/// hello to announce the limit), or waits for room (native, which announces it).
pub async fn max_streams_is_enforced<H: Harness>() -> Outcome {
    let server_config = Config {
        max_streams: 2,
        ..Config::yamux()
    };
    let (client, server) = H::pair(Config::yamux(), server_config).await.map_err(fail("connect"))?;
    let mut first = client.open().await.map_err(fail("open"))?;
    first.write_all(b"1").await.map_err(fail("write"))?;
    let mut second = client.open().await.map_err(fail("open"))?;
    second.write_all(b"2").await.map_err(fail("write"))?;
    let _a = server.accept().await.ok_or("no first inbound stream")?;
    let _b = server.accept().await.ok_or("no second inbound stream")?;
    let mut third = client.open().await.map_err(fail("open"))?;
    let refused = match third.write_all(b"3").await {
        Err(err) => err.kind() == io::ErrorKind::ConnectionRefused,
        Ok(()) => {
            let mut buf = [0u8; 1];
            matches!(race(third.read(&mut buf), H::sleep(Duration::from_secs(5))).await,
                Some(Err(err)) if err.kind() == io::ErrorKind::ConnectionRefused)
        }
    };
    if !refused {
        return Err("the stream over the limit was not refused".into());
    }

    let server_config = Config {
        max_streams: 1,
        ..Config::default()
    };
    let (client, server) = H::pair(Config::default(), server_config)
        .await
        .map_err(fail("connect"))?;
    let mut only = client.open().await.map_err(fail("open"))?;
    only.write_all(b"x").await.map_err(fail("write"))?;
    let mut inbound = server.accept().await.ok_or("no inbound stream")?;
    // A reply proves the server's hello (which precedes it) has arrived.
    inbound.write_all(b"y").await.map_err(fail("server write"))?;
    let mut reply = [0u8; 1];
    only.read(&mut reply).await.map_err(fail("read reply"))?;
    // One open, kept across both waits: it must wait now and succeed later.
    let mut opening = std::pin::pin!(client.open());
    if let Some(outcome) = race(opening.as_mut(), H::sleep(Duration::from_millis(300))).await {
        let outcome = outcome.map(|_| ());
        return Err(format!(
            "native open did not wait for room under the peer's limit: {outcome:?}"
        ));
    }
    inbound.reset(ResetCode::CANCEL);
    drop(only);
    match race(opening, H::sleep(Duration::from_secs(5))).await {
        Some(Ok(_)) => Ok(()),
        Some(Err(err)) => Err(format!("open after room freed failed: {err}")),
        None => Err("open did not proceed after the first stream closed".into()),
    }
}

/// After go-away, new opens fail, the live stream completes, then both sessions close.
pub async fn go_away_drains<H: Harness>() -> Outcome {
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    stream.write_all(b"before").await.map_err(fail("write"))?;
    let mut inbound = server.accept().await.ok_or("no inbound stream")?;
    server.go_away(GoAwayCode::NORMAL).map_err(fail("go away"))?;
    H::sleep(Duration::from_millis(100)).await;
    if client.open().await.is_ok() {
        return Err("opened a stream after go-away".into());
    }
    stream
        .write_all(b" and after")
        .await
        .map_err(fail("write during drain"))?;
    stream.finish().await.map_err(fail("finish"))?;
    let got = read_to_end(&mut inbound).await.map_err(fail("read during drain"))?;
    if got != b"before and after" {
        return Err("drained stream lost data".into());
    }
    inbound.finish().await.map_err(fail("server finish"))?;
    read_to_end(&mut stream).await.map_err(fail("client read end"))?;
    drop(stream);
    drop(inbound);
    for _ in 0..50 {
        if client.is_closed() && server.is_closed() {
            return match server.close_reason() {
                None => Ok(()),
                Some(err) => Err(format!("drain ended with an error: {err}")),
            };
        }
        H::sleep(Duration::from_millis(20)).await;
    }
    Err("sessions did not close after the drain".into())
}

fn quick_keepalive() -> Config {
    Config {
        keepalive_interval: Some(Duration::from_millis(100)),
        ping_timeout: Duration::from_millis(200),
        max_missed_pings: 2,
        ..Config::yamux()
    }
}

/// A peer that stops answering is declared dead by keepalive, and streams fail.
pub async fn silent_peer_is_declared_dead<H: Harness>() -> Outcome {
    let (client, mut raw) = H::with_raw_peer(Role::Client, quick_keepalive())
        .await
        .map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    stream.write_all(b"anyone there?").await.map_err(fail("write"))?;
    // The raw peer swallows everything and never answers.
    let swallow = H::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while matches!(raw.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut buf = [0u8; 8];
    let outcome = race(stream.read(&mut buf), H::sleep(Duration::from_secs(5))).await;
    match outcome {
        Some(Err(err)) if err.kind() == io::ErrorKind::TimedOut => {}
        Some(other) => return Err(format!("read ended with {other:?}, expected a keepalive timeout")),
        None => return Err("keepalive did not fire within 5 s".into()),
    }
    if client.close_reason() != Some(SessionError::KeepaliveTimeout) {
        return Err(format!("closed with {:?}", client.close_reason()));
    }
    let err = stream
        .write_all(b"still there?")
        .await
        .err()
        .ok_or("a write after the timeout succeeded")?;
    if hawser_driver::session_error(&err) != Some(SessionError::KeepaliveTimeout) {
        return Err(format!("a write after the timeout does not say why: {err:?}"));
    }
    drop(swallow);
    Ok(())
}

/// The next health event of `session`, or `None` if none comes within `limit`
/// (or the session ended and none are left).
async fn next_health_event<H: Harness>(session: &H::Session, limit: Duration) -> Option<hawser_driver::HealthEvent> {
    let next = std::future::poll_fn(|cx| session.control().poll_health_event(cx));
    race(next, H::sleep(limit)).await.flatten()
}

/// A ping's answer, a go-away and the status reach the application as health
/// events and in the status snapshot.
pub async fn health_events_and_status<H: Harness>() -> Outcome {
    use hawser_driver::HealthEvent;
    let (client, server) = H::pair(Config::default(), Config::default())
        .await
        .map_err(fail("connect"))?;
    client.control().ping().map_err(fail("ping"))?;
    // The keepalive's first ping may be answered first; either pong will do.
    let rtt = loop {
        match next_health_event::<H>(&client, Duration::from_secs(5)).await {
            Some(HealthEvent::Pong { rtt }) => break rtt,
            Some(_) => continue,
            None => return Err("no pong event within 5 s".into()),
        }
    };
    let status = client.control().status();
    if status.rtt_last.is_none() || status.rtt_smoothed.is_none() || status.since_last_pong.is_none() {
        return Err(format!("after a pong of {rtt:?} the status says {status:?}"));
    }
    if status.missed_pings != 0 || status.unhealthy_episodes != 0 || status.closed {
        return Err(format!("a healthy session's status says {status:?}"));
    }
    server.go_away(GoAwayCode(0x111)).map_err(fail("go away"))?;
    loop {
        match next_health_event::<H>(&client, Duration::from_secs(5)).await {
            Some(HealthEvent::GoAwayReceived(GoAwayCode(0x111))) => break,
            Some(HealthEvent::GoAwayReceived(code)) => return Err(format!("go-away with {code:?}")),
            Some(_) => continue,
            None => return Err("no go-away event within 5 s".into()),
        }
    }
    Ok(())
}

/// A peer that stops answering pings shows up as missed pings and an unhealthy
/// episode before keepalive ends the session; then the events end.
pub async fn missed_pings_are_health_events<H: Harness>() -> Outcome {
    use hawser_driver::HealthEvent;
    let (client, mut raw) = H::with_raw_peer(Role::Client, quick_keepalive())
        .await
        .map_err(fail("connect"))?;
    let swallow = H::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while matches!(raw.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut events = Vec::new();
    while let Some(event) = next_health_event::<H>(&client, Duration::from_secs(5)).await {
        events.push(event);
    }
    let expected = [
        HealthEvent::PingMissed { missed: 1 },
        HealthEvent::Unhealthy,
        HealthEvent::PingMissed { missed: 2 },
    ];
    if events != expected {
        return Err(format!("health events {events:?}, expected {expected:?}"));
    }
    let status = client.control().status();
    if !status.closed || status.unhealthy_episodes != 1 || status.missed_pings != 2 {
        return Err(format!("after the keepalive timeout the status says {status:?}"));
    }
    drop(swallow);
    Ok(())
}

fn frame(ty: FrameType, flags: Flags, stream: u32, length: u32) -> Vec<u8> {
    Header::new(ty, flags, stream, length).encode(Profile::Yamux).to_vec()
}

/// The link ends in the middle of a frame: reads fail promptly, nothing hangs.
pub async fn link_eof_mid_transfer_fails_streams<H: Harness>() -> Outcome {
    let config = Config {
        keepalive_interval: None,
        ..Config::yamux()
    };
    let (server, mut raw) = H::with_raw_peer(Role::Server, config).await.map_err(fail("connect"))?;
    let mut bytes = frame(FrameType::Data, Flags::SYN, 1, 1000);
    bytes.extend_from_slice(&[1u8; 400]); // 600 bytes short
    raw.write_all(&bytes).await.map_err(fail("raw write"))?;
    let mut stream = server.accept().await.ok_or("no inbound stream")?;
    drop(raw);
    let outcome = race(read_to_end(&mut stream), H::sleep(Duration::from_secs(5))).await;
    match outcome {
        Some(Err(err)) if err.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Some(other) => Err(format!("read ended with {other:?}, expected a link-lost error")),
        None => Err("the read hung after the link closed".into()),
    }
}

/// The peer's socket is closed with data unread (the kernel answers with a reset):
/// a writer blocked on the stream fails promptly instead of hanging.
pub async fn link_error_mid_transfer_fails_streams<H: Harness>() -> Outcome {
    let config = Config {
        keepalive_interval: None,
        ..Config::yamux()
    };
    let (client, mut raw) = H::with_raw_peer(Role::Client, config).await.map_err(fail("connect"))?;
    let mut stream = client.open().await.map_err(fail("open"))?;
    let writer = H::spawn(async move {
        // Far more than the 256 KiB window the silent peer ever grants.
        let outcome = stream.write_all(&vec![3u8; 4 << 20]).await;
        assert!(outcome.is_err(), "a write to a dead link succeeded");
    });
    let mut buf = [0u8; 1024];
    raw.read(&mut buf).await.map_err(fail("raw read"))?;
    H::sleep(Duration::from_millis(50)).await;
    drop(raw); // unread data is left in the socket: the close is a reset
    if race(writer, H::sleep(Duration::from_secs(5))).await.is_none() {
        return Err("the writer hung after the link failed".into());
    }
    if client.close_reason() != Some(SessionError::LinkLost) {
        return Err(format!("closed with {:?}", client.close_reason()));
    }
    Ok(())
}

/// A session that has ended keeps reading its link until the peer closes it.
/// A peer still reading the last data sends window updates; if they met a
/// socket closed for reading, the kernel would answer with a reset, and the
/// reset would throw away what the peer had not read yet.
pub async fn an_ended_session_reads_until_the_peer_closes<H: Harness>() -> Outcome {
    let config = Config {
        keepalive_interval: None,
        ..Config::yamux()
    };
    let (server, mut raw) = H::with_raw_peer(Role::Server, config).await.map_err(fail("connect"))?;
    // Open stream 1, finish it at once, and grant room for all of the data.
    let sent = data(7, 4 << 20);
    let mut opening = frame(FrameType::Data, Flags::SYN | Flags::FIN, 1, 0);
    opening.extend(frame(FrameType::WindowUpdate, Flags::NONE, 1, sent.len() as u32));
    raw.write_all(&opening).await.map_err(fail("raw open"))?;
    let mut stream = server.accept().await.ok_or("no inbound stream")?;
    let serving = {
        let server = server.clone();
        let sent = sent.clone();
        H::spawn(async move {
            // Its session ends once the data, the FIN and the go-away are
            // handed to the link.
            let written = stream.write_all(&sent).await.is_ok() && stream.finish().await.is_ok();
            assert!(written, "the server could not write its data");
            let _ = read_to_end(&mut stream).await;
            drop(stream);
            let _ = server.go_away(GoAwayCode::NORMAL);
        })
    };
    // Read slowly until the session has ended, so that the rest of the data
    // (and the FIN behind it) still waits in the sockets when it does.
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..5_000 {
        if server.is_closed() {
            break;
        }
        match race(raw.read(&mut buf[..8 * 1024]), H::sleep(Duration::from_millis(100))).await {
            Some(Ok(0)) => {
                return Err(format!(
                    "the link closed after {received} bytes, before the session ended"
                ))
            }
            Some(Ok(n)) => received += n,
            Some(Err(err)) => return Err(format!("the link failed after {received} bytes: {err}")),
            None => {}
        }
        H::sleep(Duration::from_millis(1)).await;
    }
    serving.await;
    if !server.is_closed() {
        return Err("the session did not end after its last stream".into());
    }
    // What a peer still reading would send: a window update. The session's
    // end has shut its link by now.
    H::sleep(Duration::from_millis(50)).await;
    raw.write_all(&frame(FrameType::WindowUpdate, Flags::NONE, 1, 64 * 1024))
        .await
        .map_err(fail("raw window update"))?;
    H::sleep(Duration::from_millis(50)).await;
    loop {
        match race(raw.read(&mut buf), H::sleep(Duration::from_secs(5))).await {
            Some(Ok(0)) => break,
            Some(Ok(n)) => received += n,
            Some(Err(err)) => {
                return Err(format!(
                    "the link was reset after {received} bytes, before the end of {} bytes of data: {err}",
                    sent.len()
                ))
            }
            None => return Err(format!("the link stayed open after {received} bytes")),
        }
    }
    // The data with a header per frame, then the FIN and the go-away.
    if received < sent.len() + 2 * 12 {
        return Err(format!("only {received} bytes came, for {} of data", sent.len()));
    }
    Ok(())
}

/// A closed session's link is released only once the peer has closed its
/// side (it has read everything, the go-away included), not when the link is
/// shut: a process that exits then loses nothing.
pub async fn released_waits_until_the_peer_has_closed<H: Harness>() -> Outcome {
    let config = Config {
        keepalive_interval: None,
        ..Config::yamux()
    };
    let (server, mut raw) = H::with_raw_peer(Role::Server, config).await.map_err(fail("connect"))?;
    let released = |server: &H::Session| {
        let control = server.control().clone();
        std::future::poll_fn(move |cx| control.poll_released(cx))
    };
    server.go_away(GoAwayCode::NORMAL).map_err(fail("go away"))?;
    let mut buf = vec![0u8; 1024];
    let mut received = 0usize;
    // The go-away ends the idle session; its link is shut (EOF here) once
    // the go-away is out.
    loop {
        match race(raw.read(&mut buf), H::sleep(Duration::from_secs(5))).await {
            Some(Ok(0)) => break,
            Some(Ok(n)) => received += n,
            Some(Err(err)) => return Err(format!("the link failed: {err}")),
            None => return Err(format!("the link was not shut after {received} bytes")),
        }
    }
    if received < 12 || !server.is_closed() {
        return Err(format!("shut after {received} bytes, closed: {}", server.is_closed()));
    }
    // The peer has not closed its side: the link lingers (for LINGER, 2 s).
    if race(released(&server), H::sleep(Duration::from_millis(200)))
        .await
        .is_some()
    {
        return Err("released while the peer still had its side open".into());
    }
    drop(raw);
    match race(released(&server), H::sleep(Duration::from_secs(5))).await {
        Some(None) => Ok(()),
        Some(Some(err)) => Err(format!("an orderly end released with {err:?}")),
        None => Err("not released after the peer closed".into()),
    }
}

/// Garbage from the peer closes the session with a protocol error.
pub async fn garbage_from_the_peer_is_a_clear_error<H: Harness>() -> Outcome {
    let (server, mut raw) = H::with_raw_peer(Role::Server, Config::yamux())
        .await
        .map_err(fail("connect"))?;
    raw.write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .await
        .map_err(fail("raw write"))?;
    let accepted = race(server.accept(), H::sleep(Duration::from_secs(5))).await;
    match accepted {
        Some(None) => {}
        Some(Some(_)) => return Err("garbage produced a stream".into()),
        None => return Err("accept hung after garbage".into()),
    }
    match server.close_reason() {
        Some(SessionError::Protocol(_)) => Ok(()),
        other => Err(format!("closed with {other:?}")),
    }
}

/// Ten sessions at once, each echoing a few streams.
pub async fn many_sessions_at_once<H: Harness>() -> Outcome {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let done = done_tx.clone();
        tasks.push(H::spawn(async move {
            let outcome = async {
                let (client, server) = H::pair(Config::default(), Config::default())
                    .await
                    .map_err(fail("connect"))?;
                let serving = H::spawn(echo_server::<H>(server));
                for j in 0..5 {
                    round_trip(&client, &data(i * 10 + j, 100_000)).await?;
                }
                client.close(GoAwayCode::NORMAL);
                serving.await;
                Ok(())
            }
            .await;
            let _ = done.send(outcome);
        }));
    }
    for task in tasks {
        task.await;
    }
    drop(done_tx);
    let results: Vec<Outcome> = done_rx.iter().collect();
    if results.len() != 10 {
        return Err(format!("{} of 10 sessions reported", results.len()));
    }
    results.into_iter().collect()
}

/// Polls `a` and `b` together; `Some` with `a`'s output if it finished first.
pub(crate) async fn race<A, B>(a: A, b: B) -> Option<A::Output>
where
    A: std::future::Future,
    B: std::future::Future,
{
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = a.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        if b.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await
}
