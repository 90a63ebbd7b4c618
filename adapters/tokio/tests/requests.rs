//! Request/response over hawser-tokio (PROTOCOL.md 8.1): many at once, limits,
//! failures and timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hawser_tokio::{reset_code, Config, Listener, RequestOptions, ResetCode, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX: usize = 64 * 1024;

fn options() -> RequestOptions {
    RequestOptions {
        max_message: MAX,
        concurrency: 32,
        ..RequestOptions::default()
    }
}

/// A server answering with `handler`; returns a client session.
async fn serve<H, F>(handler: H) -> Session
where
    H: Fn(Bytes) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Bytes, ResetCode>> + Send + 'static,
{
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (session, _) = listener.accept().await.unwrap();
        session.serve_requests(options(), handler).await
    });
    Session::connect(addr, Config::default()).await.unwrap()
}

/// Answers with the request's length, then the request reversed.
async fn reverse(request: Bytes) -> Result<Bytes, ResetCode> {
    let mut answer = (request.len() as u32).to_be_bytes().to_vec();
    answer.extend(request.iter().rev());
    Ok(answer.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_are_all_answered_correctly() {
    let client = Arc::new(serve(reverse).await);
    let mut tasks = Vec::new();
    for index in 0..1000u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            // Sizes from 0 to the maximum less the answer's 4-byte prefix.
            let len = (index.wrapping_mul(2_654_435_761) as usize) % (MAX - 3);
            let request: Vec<u8> = (0..len).map(|i| (i as u32 ^ index) as u8).collect();
            let answer = client
                .request_with(request.clone(), Duration::from_secs(30), &options())
                .await
                .unwrap_or_else(|err| panic!("request {index} of {len} bytes: {err}"));
            let mut expected = (len as u32).to_be_bytes().to_vec();
            expected.extend(request.iter().rev());
            assert_eq!(answer, expected, "request {index}");
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("all answered in time")
            .unwrap();
    }
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_sending_and_reset_when_sent_anyway() {
    let client = serve(reverse).await;
    let err = client
        .request_with(vec![0u8; MAX + 1], Duration::from_secs(10), &options())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    // A peer that sends one anyway: the responder reads only the length.
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(&(MAX as u32 + 1).to_be_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let err = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
        .await
        .expect("the responder answers at once")
        .unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode::MESSAGE_TOO_LARGE), "{err}");
    // A request cut short (the stream ends inside it).
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
    stream.shutdown().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
        .await
        .expect("the responder answers at once")
        .unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode::MALFORMED_MESSAGE), "{err}");
    // The session still serves.
    let answer = client
        .request_with("ok", Duration::from_secs(10), &options())
        .await
        .unwrap();
    assert_eq!(&answer[4..], b"ko");
}

#[tokio::test]
async fn a_failing_handler_resets_with_the_code_the_caller_sees() {
    let client = serve(|request: Bytes| async move {
        if request.starts_with(b"fail") {
            Err(ResetCode(0x321))
        } else {
            Ok(request)
        }
    })
    .await;
    let err = client.request("fail now", Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode(0x321)), "{err}");
    assert_eq!(
        &client.request("fine", Duration::from_secs(10)).await.unwrap()[..],
        b"fine"
    );
}

#[tokio::test]
async fn a_request_that_waits_too_long_times_out_and_the_session_carries_on() {
    let (cancelled_tx, mut cancelled) = tokio::sync::mpsc::unbounded_channel();
    let client = serve(move |_request: Bytes| {
        let cancelled_tx = cancelled_tx.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = cancelled_tx.send(());
            Ok(Bytes::from_static(b"late"))
        }
    })
    .await;
    let err = client.request("slow", Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    // The handler still finishes; its late answer goes nowhere and harms nothing.
    tokio::time::timeout(Duration::from_secs(10), cancelled.recv())
        .await
        .expect("the handler ran to its end");
    assert!(!client.is_closed());
}

#[tokio::test]
async fn a_request_that_trickles_in_too_slowly_is_cancelled() {
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (session, _) = listener.accept().await.unwrap();
        let options = RequestOptions {
            read_timeout: Duration::from_millis(200),
            ..options()
        };
        session.serve_requests(options, reverse).await
    });
    let client = Session::connect(addr, Config::default()).await.unwrap();
    let mut stream = client.open_stream().await.unwrap();
    // Half a length prefix, then nothing: the handler slot must not be held.
    stream.write_all(&[0, 0]).await.unwrap();
    let mut byte = [0u8; 1];
    let err = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
        .await
        .expect("the responder gives up on its own")
        .unwrap_err();
    assert_eq!(reset_code(&err), Some(ResetCode::CANCEL), "{err}");
}
