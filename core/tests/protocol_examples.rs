//! The worked examples of PROTOCOL.md (section 13), rebuilt byte for byte with
//! the public API.
//!
//! The expected bytes are not copied here: they are read from PROTOCOL.md itself,
//! from the fenced blocks whose info string is `hex example=NAME`, so that the
//! document and the code cannot drift apart. In a block, everything after `#` on a
//! line is a comment; the rest is hex digits, two to a byte, spaces ignored.
//!
//! Everything is pure core: two sessions wired back to back by hand, with fixed
//! ids, tokens and times, so every byte is deterministic.

use std::time::Duration;

use bytes::Bytes;
use hawser_core::frame::{Flags, FrameType, Header, HEADER_LEN};
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal, ResumeRequest, ResumeToken, Ticket};
use hawser_core::{
    Config, Event, GoAwayCode, Instant, Profile, ProtocolError, Resumption, Role, Session, SessionError, Settings,
};

const PROTOCOL: &str = include_str!("../../PROTOCOL.md");

/// Every example PROTOCOL.md has, each checked by a test below.
const EXAMPLES: [&str; 8] = [
    "hello",
    "ticket",
    "ack",
    "replay-sequence",
    "resume-request",
    "refusal",
    "resume-answer",
    "replay-resent",
];

const FENCE: &str = "```hex example=";

/// The bytes of the example block `name` in PROTOCOL.md.
fn example(name: &str) -> Vec<u8> {
    let opening = format!("{FENCE}{name}");
    let mut found: Option<Vec<u8>> = None;
    let mut lines = PROTOCOL.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != opening {
            continue;
        }
        assert!(found.is_none(), "PROTOCOL.md has two examples named {name}");
        let mut bytes = Vec::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line.trim() == "```" {
                closed = true;
                break;
            }
            let data = match line.find('#') {
                Some(at) => &line[..at],
                None => line,
            };
            let digits: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            assert!(
                digits.iter().all(u8::is_ascii_hexdigit),
                "example {name}: not hex before the comment: {line:?}"
            );
            assert!(
                digits.len() % 2 == 0,
                "example {name}: an odd number of hex digits: {line:?}"
            );
            for pair in digits.chunks(2) {
                let text = std::str::from_utf8(pair).expect("ASCII hex digits");
                let byte = u8::from_str_radix(text, 16).expect("two hex digits");
                bytes.push(byte);
            }
        }
        assert!(closed, "example {name} is not closed by a ``` line");
        assert!(!bytes.is_empty(), "example {name} is empty");
        found = Some(bytes);
    }
    match found {
        Some(bytes) => bytes,
        None => panic!("PROTOCOL.md has no example named {name}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Asserts that `actual` is byte for byte the example `name` of PROTOCOL.md.
fn assert_example(name: &str, actual: &[u8]) {
    let expected = example(name);
    assert_eq!(
        hex(actual),
        hex(&expected),
        "example {name}: hawser (left) and PROTOCOL.md (right) disagree"
    );
}

/// Everything the session wants to send now, one frame (as written to the link)
/// per entry.
fn drain(session: &mut Session, now: Instant) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(transmit) = session.poll_transmit(now) {
        let mut bytes = Vec::new();
        transmit.write_to(&mut bytes);
        frames.push(bytes);
        assert!(frames.len() < 1000, "the session never stops transmitting");
    }
    frames
}

/// Carries frames both ways until neither side has anything more to send.
fn settle(client: &mut Session, server: &mut Session, now: Instant) {
    for _ in 0..10 {
        let to_server = drain(client, now).concat();
        let to_client = drain(server, now).concat();
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
        server.handle_input_slice(now, &to_server);
        client.handle_input_slice(now, &to_client);
    }
    panic!("the sessions never fell quiet");
}

fn events(session: &mut Session) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = session.poll_event() {
        events.push(event);
        assert!(events.len() < 1000, "the session never stops reporting events");
    }
    events
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

fn decode_header(frame: &[u8]) -> Header {
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&frame[..HEADER_LEN]);
    Header::decode(&head, Profile::Native).expect("a valid native header")
}

#[test]
fn every_example_in_protocol_md_is_checked_here() {
    let mut named: Vec<&str> = PROTOCOL
        .lines()
        .filter_map(|line| line.trim_end().strip_prefix(FENCE))
        .collect();
    named.sort_unstable();
    let mut known = EXAMPLES.to_vec();
    known.sort_unstable();
    assert_eq!(
        named, known,
        "the examples in PROTOCOL.md and the ones this file checks"
    );
    for name in EXAMPLES {
        // Each parses, and exactly once.
        example(name);
    }
}

// ----- 13.1: the hello ---------------------------------------------------------------

#[test]
fn hello_with_resumption() {
    let config = Config {
        resumption: Some(Resumption::default()),
        ..Config::default()
    };
    for role in [Role::Client, Role::Server] {
        let mut session = Session::new(role, config.clone(), Instant::ZERO).expect("a valid config");
        let frames = drain(&mut session, Instant::ZERO);
        assert_eq!(
            frames.len(),
            1,
            "{role:?}: a new session sends its hello and nothing else"
        );
        assert_example("hello", &frames[0]);
    }

    let hello = example("hello");
    assert_eq!(decode_header(&hello), Header::new(FrameType::Hello, Flags::NONE, 0, 38));
    let settings = Settings::decode(&hello[HEADER_LEN..]).expect("a valid hello payload");
    assert_eq!(
        settings,
        Settings {
            initial_window: 256 * 1024,
            max_frame_size: 64 * 1024,
            max_streams: 512,
            keepalive_ms: 30_000,
            capabilities: 0x1,
        }
    );
    assert_eq!(settings.encode().as_slice(), &hello[HEADER_LEN..]);

    // Without resumption only the capabilities differ: 0.
    let mut plain = Session::new(Role::Client, Config::default(), Instant::ZERO).expect("a valid config");
    let frames = drain(&mut plain, Instant::ZERO);
    assert_eq!(frames.len(), 1);
    let mut expected = hello;
    let last = expected.len() - 1;
    expected[last] = 0;
    assert_eq!(hex(&frames[0]), hex(&expected));
}

// ----- 13.2: a session resumed mid-frame -------------------------------------------------

const ID: u64 = 0x0102_0304_0506_0708;
const TOKEN: [u8; 16] = [0x11; 16];
const NEXT_TOKEN: [u8; 16] = [0x22; 16];
const WRONG_TOKEN: [u8; 16] = [0x33; 16];
/// How much of the client's sequence reaches the server before the link fails.
const CUT: usize = 26;

fn ticket() -> Ticket {
    Ticket {
        id: ID,
        token: ResumeToken::from_bytes(TOKEN),
    }
}

fn scenario_config() -> Config {
    Config {
        keepalive_interval: None,
        resumption: Some(Resumption::default()),
        ..Config::default()
    }
}

/// Two sessions after steps 1 to 3 of 13.2: hellos and ticket exchanged, the
/// client's Ack and Data frame sent, only `CUT` bytes of them delivered, and the
/// link lost on both sides.
struct Detached {
    client: Session,
    server: Session,
    now: Instant,
    /// The server's ticket frame (step 1).
    ticket: Vec<u8>,
    /// The client's first Ack (step 2).
    ack: Vec<u8>,
    /// The client's sequence as first sent: the Ack and the Data frame (step 3).
    client_sequence: Vec<u8>,
}

fn detached() -> Detached {
    let t0 = Instant::ZERO;
    let mut client = Session::new(Role::Client, scenario_config(), t0).expect("a valid config");
    let mut server = Session::new(Role::Server, scenario_config(), t0).expect("a valid config");
    server.set_resume_ticket(ticket());

    // Step 1: the hellos cross; the server's ticket follows the client's hello.
    let server_hello = drain(&mut server, t0);
    assert_eq!(
        server_hello.len(),
        1,
        "the server's hello; the ticket waits for the client's"
    );
    assert_eq!(server_hello[0][1], FrameType::Hello.to_u8());
    let client_hello = drain(&mut client, t0);
    assert_eq!(client_hello.len(), 1, "the client sends its hello");
    assert_eq!(client_hello[0][1], FrameType::Hello.to_u8());
    server.handle_input_slice(t0, &client_hello.concat());
    let after_hello = drain(&mut server, t0);
    assert_eq!(
        after_hello.len(),
        1,
        "the ticket, once the client's hello shows it can resume"
    );
    let ticket_frame = after_hello[0].clone();
    client.handle_input_slice(t0, &[server_hello.concat(), ticket_frame.clone()].concat());
    let got = client.resume_ticket().expect("the client has the ticket");
    assert_eq!(got.id, ID);
    assert!(got.token.ct_eq(&ResumeToken::from_bytes(TOKEN)));
    assert!(client.is_resumable() && server.is_resumable());
    assert!(drain(&mut client, t0).is_empty(), "the Ack waits for ack_delay");
    assert!(drain(&mut server, t0).is_empty());

    // Step 2: ack_delay after the ticket arrived, the client acknowledges it.
    let t1 = t0 + Duration::from_millis(20);
    assert_eq!(client.poll_timeout(), Some(t1), "the Ack timer is the only one armed");
    client.handle_timeout(t1);

    // Step 3: the client opens stream 1 and writes "hello" before transmitting.
    let id = client.open(t1).expect("room for a stream");
    assert_eq!(id.raw(), 1);
    let written = client
        .stream(id)
        .write(Bytes::from_static(b"hello"))
        .expect("room to write");
    assert_eq!(written, 5);
    let frames = drain(&mut client, t1);
    assert_eq!(frames.len(), 2, "the Ack, then the Data frame carrying the SYN");
    let ack = frames[0].clone();
    let client_sequence = frames.concat();
    assert_eq!(client.replay_buffered(), client_sequence.len() as u64);

    // Only the first CUT bytes reach the server, then the link fails.
    server.handle_input_slice(t1, &client_sequence[..CUT]);
    assert!(!server.is_closed(), "{:?}", server.close_reason());
    assert_eq!(server.replay_buffered(), 0, "the client's Ack covered the ticket");
    assert!(drain(&mut server, t1).is_empty());
    client.handle_link_lost(t1);
    server.handle_link_lost(t1);
    assert!(client.is_detached() && server.is_detached());
    assert!(events(&mut client).contains(&Event::Detached));
    assert!(events(&mut server).contains(&Event::Detached));

    Detached {
        client,
        server,
        now: t1 + Duration::from_secs(1),
        ticket: ticket_frame,
        ack,
        client_sequence,
    }
}

/// Everything 13.2 shows.
struct Transcript {
    ticket: Vec<u8>,
    ack: Vec<u8>,
    client_sequence: Vec<u8>,
    request: Vec<u8>,
    answer: Vec<u8>,
    resent: Vec<u8>,
    ack_after_replay: Vec<u8>,
}

fn resumed() -> Transcript {
    let Detached {
        mut client,
        mut server,
        now,
        ticket: ticket_frame,
        ack,
        client_sequence,
    } = detached();

    // Step 5 (tried first here, while the session waits): refusals change nothing.
    let wrong_token = ResumeRequest {
        ticket: Ticket {
            id: ID,
            token: ResumeToken::from_bytes(WRONG_TOKEN),
        },
        received: 36,
    };
    assert_eq!(
        server.handle_resume(now, &wrong_token, ResumeToken::from_bytes(NEXT_TOKEN)),
        Err(ResumeRefusal::NoSuchSession)
    );
    let unknown_id = ResumeRequest {
        ticket: Ticket {
            id: ID + 1,
            token: ResumeToken::from_bytes(TOKEN),
        },
        received: 36,
    };
    assert_eq!(
        server.handle_resume(now, &unknown_id, ResumeToken::from_bytes(NEXT_TOKEN)),
        Err(ResumeRefusal::NoSuchSession)
    );
    for received in [37, 35] {
        // Beyond the 36 bytes the server sent; before the 36 the client acknowledged.
        let bad_offset = ResumeRequest {
            ticket: ticket(),
            received,
        };
        assert_eq!(
            server.handle_resume(now, &bad_offset, ResumeToken::from_bytes(NEXT_TOKEN)),
            Err(ResumeRefusal::BadOffset),
            "received = {received}"
        );
    }
    assert!(server.is_detached() && !server.is_closed());
    assert!(drain(&mut server, now).is_empty(), "a refused session sends nothing");

    // Step 4: the client's resume request, its only frame until the answer.
    client.attach(now).expect("a detached client attaches");
    let frames = drain(&mut client, now);
    assert_eq!(frames.len(), 1, "the resume request and nothing else");
    let request = frames[0].clone();

    // Step 6: the acceptor reads the request; the session accepts and answers.
    let parsed = match parse_opening(&request) {
        Ok(Some(Opening::Resume {
            request: parsed,
            consumed,
        })) => {
            assert_eq!(consumed, request.len());
            parsed
        }
        other => panic!("not a resume request: {other:?}"),
    };
    assert_eq!(parsed.ticket.id, ID);
    assert!(parsed.ticket.token.ct_eq(&ResumeToken::from_bytes(TOKEN)));
    assert_eq!(parsed.received, 36);
    assert_eq!(
        server.handle_resume(now, &parsed, ResumeToken::from_bytes(NEXT_TOKEN)),
        Ok(())
    );
    let frames = drain(&mut server, now);
    assert_eq!(frames.len(), 1, "the answer; the server has nothing to replay or send");
    let answer = frames[0].clone();
    assert!(!server.is_detached());

    // Step 7: the client takes the answer, replays from the server's offset, and
    // acknowledges.
    client.handle_input_slice(now, &answer);
    assert!(!client.is_closed(), "{:?}", client.close_reason());
    assert!(!client.is_detached());
    let frames = drain(&mut client, now);
    assert_eq!(frames.len(), 2, "the rest of the cut frame, then an Ack");
    let resent = frames[0].clone();
    let ack_after_replay = frames[1].clone();
    let token = client.resume_ticket().expect("the client keeps its ticket").token;
    assert!(
        token.ct_eq(&ResumeToken::from_bytes(NEXT_TOKEN)),
        "the client took the new token"
    );
    let token = server.resume_ticket().expect("the server keeps its ticket").token;
    assert!(token.ct_eq(&ResumeToken::from_bytes(NEXT_TOKEN)));
    assert_eq!(client.stats().resumes, 1);
    assert_eq!(client.stats().bytes_replayed, resent.len() as u64);
    assert_eq!(server.stats().resumes, 1);
    assert_eq!(server.stats().bytes_replayed, 0);
    assert!(events(&mut client).contains(&Event::Resumed { replayed: 11 }));
    assert!(events(&mut server).contains(&Event::Resumed { replayed: 0 }));

    // The server's decoder continues mid-header: stream 1 opens and "hello" arrives.
    server.handle_input_slice(now, &[resent.as_slice(), ack_after_replay.as_slice()].concat());
    assert!(!server.is_closed(), "{:?}", server.close_reason());
    let inbound = server.accept().expect("stream 1 arrived");
    assert_eq!(inbound.raw(), 1);
    assert_eq!(server.stream(inbound).read(64), Ok(Some(Bytes::from_static(b"hello"))));

    Transcript {
        ticket: ticket_frame,
        ack,
        client_sequence,
        request,
        answer,
        resent,
        ack_after_replay,
    }
}

#[test]
fn step_1_ticket() {
    let transcript = resumed();
    assert_example("ticket", &transcript.ticket);
    let ticket = example("ticket");
    assert_eq!(
        decode_header(&ticket),
        Header::new(FrameType::Resume, Flags::NONE, 0, 24)
    );
    assert_eq!(u64_at(&ticket, HEADER_LEN), ID);
    assert_eq!(&ticket[HEADER_LEN + 8..], &TOKEN[..]);
}

#[test]
fn step_2_ack() {
    let transcript = resumed();
    assert_example("ack", &transcript.ack);
    let ack = example("ack");
    assert_eq!(decode_header(&ack), Header::new(FrameType::Ack, Flags::NONE, 0, 8));
    // The server's ticket is all of its sequence the client had: the hello is not counted.
    assert_eq!(u64_at(&ack, HEADER_LEN), example("ticket").len() as u64);
}

#[test]
fn step_3_the_client_sequence() {
    let transcript = resumed();
    assert_example("replay-sequence", &transcript.client_sequence);
    let sequence = example("replay-sequence");
    let ack = example("ack");
    assert_eq!(
        &sequence[..ack.len()],
        ack.as_slice(),
        "the sequence starts with the Ack"
    );
    assert_eq!(
        decode_header(&sequence[ack.len()..]),
        Header::new(FrameType::Data, Flags::SYN, 1, 5)
    );
    assert_eq!(&sequence[ack.len() + HEADER_LEN..], &b"hello"[..]);
}

#[test]
fn step_4_resume_request() {
    let transcript = resumed();
    assert_example("resume-request", &transcript.request);
    let encoded = ResumeRequest {
        ticket: ticket(),
        received: 36,
    }
    .encode();
    assert_example("resume-request", &encoded);
}

#[test]
fn step_5_refusal() {
    assert_example("refusal", &ResumeRefusal::NoSuchSession.frame());
    assert_eq!(ResumeRefusal::NoSuchSession.code(), GoAwayCode::RESUME_NO_SUCH_SESSION);
    // The other refusals differ only in the code, the last byte.
    let refusal = example("refusal");
    let last = refusal.len() - 1;
    for (other, code) in [
        (ResumeRefusal::BadOffset, 8u8),
        (ResumeRefusal::RateLimited, 9),
        (ResumeRefusal::BadRequest, 3),
    ] {
        let mut expected = refusal.clone();
        expected[last] = code;
        assert_eq!(hex(&other.frame()), hex(&expected), "{other:?}");
    }
}

#[test]
fn step_6_resume_answer() {
    let transcript = resumed();
    assert_example("resume-answer", &transcript.answer);
    let answer = example("resume-answer");
    assert_eq!(
        decode_header(&answer),
        Header::new(FrameType::Resume, Flags::ACK, 0, 24)
    );
    assert_eq!(u64_at(&answer, HEADER_LEN), CUT as u64);
    assert_eq!(&answer[HEADER_LEN + 8..], &NEXT_TOKEN[..]);
}

#[test]
fn step_7_replay_from_mid_frame() {
    let transcript = resumed();
    assert_example("replay-resent", &transcript.resent);
    // What is resent is the sequence from the offset in the answer, exactly.
    let offset = u64_at(&example("resume-answer"), HEADER_LEN);
    let offset = usize::try_from(offset).expect("a small offset");
    let sequence = example("replay-sequence");
    assert_eq!(hex(&example("replay-resent")), hex(&sequence[offset..]));
    // Then the client's Ack: the same as in step 2.
    assert_example("ack", &transcript.ack_after_replay);
}

// ----- rules of section 12 the examples rely on -------------------------------------------

#[test]
fn an_answer_beyond_what_the_client_sent_ends_the_client_with_a_protocol_error() {
    let Detached { mut client, now, .. } = detached();
    client.attach(now).expect("a detached client attaches");
    assert_eq!(drain(&mut client, now).len(), 1, "the resume request");
    // The answer of step 6, claiming 38 bytes of the client's 37.
    let mut answer = example("resume-answer");
    answer[HEADER_LEN + 7] = 38;
    client.handle_input_slice(now, &answer);
    assert!(client.is_closed());
    assert!(
        matches!(
            client.close_reason(),
            Some(SessionError::Protocol(ProtocolError::Resumption(_)))
        ),
        "{:?}",
        client.close_reason()
    );
    // The GoAway (protocol error, 1) goes out on the new link.
    let frames = drain(&mut client, now);
    let expected = Header::new(FrameType::GoAway, Flags::NONE, 0, GoAwayCode::PROTOCOL_ERROR.0).encode(Profile::Native);
    assert_eq!(frames, vec![expected.to_vec()]);
}

#[test]
fn data_stops_at_fifteen_sixteenths_of_the_replay_buffer_until_acknowledged() {
    let config = Config {
        keepalive_interval: None,
        resumption: Some(Resumption {
            replay_buffer: 16 * 1024,
            ack_bytes: 4 * 1024,
            ..Resumption::default()
        }),
        ..Config::default()
    };
    let t0 = Instant::ZERO;
    let mut client = Session::new(Role::Client, config.clone(), t0).expect("a valid config");
    let mut server = Session::new(Role::Server, config, t0).expect("a valid config");
    server.set_resume_ticket(ticket());
    settle(&mut client, &mut server, t0);
    assert!(client.resume_ticket().is_some(), "the ticket arrived");
    assert_eq!(
        client.replay_buffered(),
        0,
        "the client has sent nothing of its sequence"
    );

    let id = client.open(t0).expect("room for a stream");
    let written = client
        .stream(id)
        .write(Bytes::from(vec![0x5au8; 64 * 1024]))
        .expect("room to write");
    assert_eq!(written, 64 * 1024);
    // D = 16384 - 16384 / 16 = 15360 bytes for data, a 12-byte header included.
    let frames = drain(&mut client, t0);
    assert_eq!(frames.len(), 1, "one Data frame, then nothing until an Ack");
    assert_eq!(frames[0].len(), 15_360);
    assert_eq!(
        decode_header(&frames[0]),
        Header::new(FrameType::Data, Flags::SYN, 1, 15_348)
    );
    assert_eq!(client.replay_buffered(), 15_360);

    // 15360 bytes >= ack_bytes: the server acknowledges at once, without a timer.
    server.handle_input_slice(t0, &frames[0]);
    let frames = drain(&mut server, t0);
    let mut expected = Header::new(FrameType::Ack, Flags::NONE, 0, 8)
        .encode(Profile::Native)
        .to_vec();
    expected.extend_from_slice(&15_360u64.to_be_bytes());
    assert_eq!(frames.len(), 1, "the Ack only: the stream is not accepted yet");
    assert_eq!(hex(&frames[0]), hex(&expected));

    // The Ack empties the client's tail: the next Data frame goes out.
    client.handle_input_slice(t0, &frames[0]);
    assert_eq!(client.replay_buffered(), 0);
    let frames = drain(&mut client, t0);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        decode_header(&frames[0]),
        Header::new(FrameType::Data, Flags::NONE, 1, 15_348)
    );
}
