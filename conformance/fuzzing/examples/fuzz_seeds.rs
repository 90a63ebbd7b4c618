//! Writes the fuzz targets' seed corpus, `fuzz/seeds/<target>/`, from real
//! transcripts: a client and a server of each profile, with and without
//! resumption, open streams, send data both ways, finish, reset, ping and go
//! away; the bytes each side received become `session_input` seeds, their
//! frame headers and hellos the decoder seeds, and a real resume (request,
//! answer and replay) the `opening` and `resume_answer` seeds.
//!
//! ```text
//! cargo run -p hawser-fuzzing --example fuzz_seeds
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hawser_core::frame::HEADER_LEN;
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal, ResumeToken};
use hawser_core::{GoAwayCode, Instant, Profile, ResetCode, Role, Session};
use hawser_fuzzing::common::tight_config;
use hawser_fuzzing::{resume_answer, session_input};

/// What one run of two sessions sent each way.
#[derive(Default)]
struct Transcript {
    /// Bytes the client received, and the server.
    received: [Vec<u8>; 2],
    /// One frame header of each type and flags seen.
    headers: BTreeMap<(u8, u16), [u8; HEADER_LEN]>,
    /// The hellos' settings payloads.
    hello_payloads: Vec<Vec<u8>>,
    /// The first frame each side sent (a hello in the native profile).
    first_frames: Vec<Vec<u8>>,
}

impl Transcript {
    /// Moves what `from` has to send to `to`; says whether there was any.
    fn pass(&mut self, sessions: &mut [Session; 2], from: usize, now: Instant) -> bool {
        let mut bytes = Vec::new();
        while let Some(frame) = sessions[from].poll_transmit(now) {
            let header = frame.header();
            if let Ok(whole) = <[u8; HEADER_LEN]>::try_from(header) {
                let ty = whole[1];
                let flags = u16::from_be_bytes([whole[2], whole[3]]);
                self.headers.entry((ty, flags)).or_insert(whole);
                if ty == 4 && self.hello_payloads.len() < 2 {
                    self.hello_payloads.push(frame.payload().to_vec());
                }
            }
            if self.first_frames.len() <= from && bytes.is_empty() {
                let mut first = Vec::new();
                frame.write_to(&mut first);
                self.first_frames.push(first);
            }
            frame.write_to(&mut bytes);
        }
        if bytes.is_empty() {
            return false;
        }
        self.received[1 - from].extend_from_slice(&bytes);
        sessions[1 - from].handle_input(now, Bytes::from(bytes));
        true
    }

    /// Lets both sides talk until neither has anything to say; each side's
    /// application accepts and reads everything.
    fn settle(&mut self, sessions: &mut [Session; 2], now: Instant) {
        for _ in 0..64 {
            let moved = self.pass(sessions, 0, now) | self.pass(sessions, 1, now);
            for session in sessions.iter_mut() {
                while let Some(id) = session.accept() {
                    let _ = session.stream(id).write(Bytes::from(vec![b'r'; 2000]));
                    let _ = session.stream(id).finish();
                }
                while let Some(event) = session.poll_event() {
                    if let hawser_core::Event::Readable(id) = event {
                        while let Ok(Some(_)) = session.stream(id).read(usize::MAX) {}
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn transcript(profile: Profile, resumable: bool) -> Transcript {
    let config = tight_config(profile, resumable);
    let mut now = Instant::ZERO;
    let client = Session::new(Role::Client, config.clone(), now).expect("the config is valid");
    let mut server = Session::new(Role::Server, config, now).expect("the config is valid");
    server.set_resume_ticket(session_input::TICKET);
    let mut sessions = [client, server];
    let mut record = Transcript::default();
    record.settle(&mut sessions, now);
    let mut opened = Vec::new();
    for size in [100usize, 3000, 40_000] {
        if let Ok(id) = sessions[0].open(now) {
            let _ = sessions[0].stream(id).write(Bytes::from(vec![b'q'; size]));
            opened.push(id);
        }
    }
    if let Some(&first) = opened.first() {
        let _ = sessions[0].stream(first).finish();
    }
    record.settle(&mut sessions, now);
    if let Some(&last) = opened.last() {
        let _ = sessions[1].stream(last).reset(ResetCode(0x123));
    }
    let _ = sessions[0].ping(now);
    record.settle(&mut sessions, now);
    now = now + Duration::from_millis(50);
    for session in sessions.iter_mut() {
        session.handle_timeout(now);
    }
    record.settle(&mut sessions, now);
    let _ = sessions[0].go_away(now, GoAwayCode::NORMAL);
    record.settle(&mut sessions, now);
    record
}

/// `input` as `session_input` records, after the mode byte.
fn session_input_seed(mode: u8, input: &[u8]) -> Vec<u8> {
    // Full records, the clock moving 9 ms after each.
    let control = 0xf8 | 1;
    let mut seed = vec![mode];
    for piece in input.chunks(session_input::record_len(control)) {
        seed.push(control);
        seed.extend_from_slice(piece);
    }
    seed
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
    let dir = dir.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)
}

fn main() -> io::Result<()> {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    use session_input::mode;
    let mut headers = BTreeMap::new();
    for (name, profile, resumable) in [
        ("yamux", Profile::Yamux, false),
        ("native", Profile::Native, false),
        ("native-resumable", Profile::Native, true),
    ] {
        let record = transcript(profile, resumable);
        let mut bits = if profile == Profile::Native { mode::NATIVE } else { 0 };
        if resumable {
            bits |= mode::RESUMABLE;
        }
        let client_seed = session_input_seed(bits, &record.received[0]);
        let server_seed = session_input_seed(bits | mode::SERVER, &record.received[1]);
        write(&seeds, "session_input", &format!("{name}-client"), &client_seed)?;
        write(&seeds, "session_input", &format!("{name}-server"), &server_seed)?;
        headers.extend(record.headers);
        for (index, payload) in record.hello_payloads.iter().enumerate() {
            write(&seeds, "settings", &format!("{name}-hello-{index}"), payload)?;
        }
        if profile == Profile::Native {
            if let Some(hello) = record.first_frames.first() {
                write(&seeds, "opening", &format!("{name}-hello"), hello)?;
            }
        }
    }
    for ((ty, flags), header) in &headers {
        write(&seeds, "frame_header", &format!("type{ty}-flags{flags:#x}"), header)?;
    }

    // A real resume: the client's request, and the server's answer and replay.
    let (_client, mut server, request) = resume_answer::detached_client();
    write(&seeds, "opening", "resume-request", &request)?;
    let Ok(Some(Opening::Resume { request: parsed, .. })) = parse_opening(&request) else {
        return Err(io::Error::other("the client's resume request does not parse"));
    };
    let now = Instant::ZERO;
    server
        .handle_resume(now, &parsed, ResumeToken::from_bytes([3; 16]))
        .map_err(|refusal| io::Error::other(format!("the resume was refused: {refusal}")))?;
    let mut answer = Vec::new();
    while let Some(frame) = server.poll_transmit(now) {
        frame.write_to(&mut answer);
    }
    let control = 0xf8;
    let records = |bytes: &[u8]| -> Vec<u8> {
        let mut seed = Vec::new();
        for piece in bytes.chunks(resume_answer::record_len(control)) {
            seed.push(control);
            seed.extend_from_slice(piece);
        }
        seed
    };
    write(&seeds, "resume_answer", "accepted", &records(&answer))?;
    write(
        &seeds,
        "resume_answer",
        "refused",
        &records(&ResumeRefusal::NoSuchSession.frame()),
    )?;
    println!("fuzz_seeds: wrote the seeds under {}", seeds.display());
    Ok(())
}
