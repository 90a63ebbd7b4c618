//! Request/response over hawser-blocking (PROTOCOL.md 8.1): many at once,
//! limits, failures and timeouts; the same wire form as hawser-tokio's.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use hawser_blocking::{reset_code, Config, Listener, RequestOptions, ResetCode, Session};

const MAX: usize = 64 * 1024;

fn options() -> RequestOptions {
    RequestOptions {
        max_message: MAX,
        concurrency: 16,
        ..RequestOptions::default()
    }
}

/// A server answering with `handler` on a thread of its own; returns a client.
fn serve<H>(handler: H) -> Session
where
    H: Fn(Vec<u8>) -> Result<Vec<u8>, ResetCode> + Send + Sync + 'static,
{
    let listener = Listener::bind("127.0.0.1:0", Config::default()).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (session, _) = listener.accept().unwrap();
        session.serve_requests(options(), handler)
    });
    Session::connect(addr, Config::default()).unwrap()
}

/// Answers with the request's length, then the request reversed.
fn reverse(request: Vec<u8>) -> Result<Vec<u8>, ResetCode> {
    let mut answer = (request.len() as u32).to_be_bytes().to_vec();
    answer.extend(request.iter().rev());
    Ok(answer)
}

#[test]
fn a_thousand_requests_from_many_threads_are_all_answered_correctly() {
    let client = Arc::new(serve(reverse));
    let threads: Vec<_> = (0..20u32)
        .map(|thread| {
            let client = client.clone();
            std::thread::spawn(move || {
                for round in 0..50u32 {
                    let index = thread * 50 + round;
                    let len = (index.wrapping_mul(2_654_435_761) as usize) % (MAX - 3);
                    let request: Vec<u8> = (0..len).map(|i| (i as u32 ^ index) as u8).collect();
                    let answer = client
                        .request_with(&request, Duration::from_secs(30), &options())
                        .unwrap_or_else(|err| panic!("request {index} of {len} bytes: {err}"));
                    let mut expected = (len as u32).to_be_bytes().to_vec();
                    expected.extend(request.iter().rev());
                    assert_eq!(answer, expected, "request {index}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn oversized_and_malformed_requests_are_reset() {
    let client = serve(reverse);
    let err = client
        .request_with(&vec![0u8; MAX + 1], Duration::from_secs(10), &options())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let mut byte = [0u8; 1];
    let mut stream = client.open_stream().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream.write_all(&(MAX as u32 + 1).to_be_bytes()).unwrap();
    let err = stream.read(&mut byte).unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode::MESSAGE_TOO_LARGE), "{err}");
    let mut stream = client.open_stream().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream.write_all(&[0, 0, 0, 10, 1, 2, 3]).unwrap();
    stream.finish().unwrap();
    let err = stream.read(&mut byte).unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode::MALFORMED_MESSAGE), "{err}");
    let answer = client.request_with(b"ok", Duration::from_secs(10), &options()).unwrap();
    assert_eq!(&answer[4..], b"ko");
}

#[test]
fn a_failing_handler_resets_with_the_code_the_caller_sees() {
    let client = serve(|request| {
        if request.starts_with(b"fail") {
            Err(ResetCode(0x321))
        } else {
            Ok(request)
        }
    });
    let err = client.request(b"fail now", Duration::from_secs(10)).unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode(0x321)), "{err}");
    assert_eq!(client.request(b"fine", Duration::from_secs(10)).unwrap(), b"fine");
}

#[test]
fn a_request_that_waits_too_long_times_out() {
    let client = serve(|request| {
        std::thread::sleep(Duration::from_secs(2));
        Ok(request)
    });
    let err = client.request(b"slow", Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(!client.is_closed());
}

#[test]
fn a_blocking_requester_and_a_tokio_responder_speak_the_same_bytes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = runtime.block_on(async {
        let listener = hawser_tokio::Listener::bind("127.0.0.1:0", Config::default())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (session, _) = listener.accept().await.unwrap();
            session
                .serve_requests(RequestOptions::default(), |request: bytes::Bytes| async move {
                    Ok(request.iter().rev().copied().collect::<Vec<u8>>().into())
                })
                .await
        });
        addr
    });
    let client = Session::connect(addr, Config::default()).unwrap();
    assert_eq!(client.request(b"across", Duration::from_secs(10)).unwrap(), b"ssorca");
}
