//! Request/response over hawser-async-std (PROTOCOL.md 8.1): many at once,
//! limits, failures and timeouts; the same wire form as the other adapters.
#![cfg(feature = "async-std")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use hawser_async_std::{reset_code, Config, Listener, RequestOptions, ResetCode, Session};

const MAX: usize = 64 * 1024;

fn options() -> RequestOptions {
    RequestOptions {
        max_message: MAX,
        concurrency: 32,
        ..RequestOptions::default()
    }
}

async fn serve<H, F>(handler: H) -> Session
where
    H: Fn(Bytes) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Bytes, ResetCode>> + Send + 'static,
{
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    async_std::task::spawn(async move {
        let (session, _) = listener.accept().await.unwrap();
        session.serve_requests(options(), handler).await
    });
    Session::connect(addr, Config::default()).await.unwrap()
}

async fn reverse(request: Bytes) -> Result<Bytes, ResetCode> {
    let mut answer = (request.len() as u32).to_be_bytes().to_vec();
    answer.extend(request.iter().rev());
    Ok(answer.into())
}

fn run(test: impl std::future::Future<Output = ()>) {
    async_std::task::block_on(async {
        async_std::future::timeout(Duration::from_secs(60), test)
            .await
            .expect("the test finished in time")
    });
}

#[test]
fn a_thousand_concurrent_requests_are_all_answered_correctly() {
    run(async {
        let client = Arc::new(serve(reverse).await);
        let tasks: Vec<_> = (0..1000u32)
            .map(|index| {
                let client = client.clone();
                async_std::task::spawn(async move {
                    let len = (index.wrapping_mul(2_654_435_761) as usize) % (MAX - 3);
                    let request: Vec<u8> = (0..len).map(|i| (i as u32 ^ index) as u8).collect();
                    let answer = client
                        .request_with(request.clone(), Duration::from_secs(30), &options())
                        .await
                        .unwrap_or_else(|err| panic!("request {index} of {len} bytes: {err}"));
                    let mut expected = (len as u32).to_be_bytes().to_vec();
                    expected.extend(request.iter().rev());
                    assert_eq!(answer, expected, "request {index}");
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
}

#[test]
fn oversized_and_malformed_requests_are_reset() {
    run(async {
        let client = serve(reverse).await;
        let err = client
            .request_with(vec![0u8; MAX + 1], Duration::from_secs(10), &options())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        let mut byte = [0u8; 1];
        let mut stream = client.open_stream().await.unwrap();
        stream.write_all(&(MAX as u32 + 1).to_be_bytes()).await.unwrap();
        let err = stream.read(&mut byte).await.unwrap_err();
        assert_eq!(reset_code(&err), Some(ResetCode::MESSAGE_TOO_LARGE), "{err}");
        let mut stream = client.open_stream().await.unwrap();
        stream.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
        stream.close().await.unwrap();
        let err = stream.read(&mut byte).await.unwrap_err();
        assert_eq!(reset_code(&err), Some(ResetCode::MALFORMED_MESSAGE), "{err}");
        let answer = client
            .request_with("ok", Duration::from_secs(10), &options())
            .await
            .unwrap();
        assert_eq!(&answer[4..], b"ko");
    });
}

#[test]
fn a_failing_handler_resets_with_the_code_the_caller_sees_and_a_slow_one_times_out() {
    run(async {
        let client = serve(|request: Bytes| async move {
            if request.starts_with(b"fail") {
                Err(ResetCode(0x321))
            } else if request.starts_with(b"slow") {
                async_std::task::sleep(Duration::from_secs(2)).await;
                Ok(request)
            } else {
                Ok(request)
            }
        })
        .await;
        let err = client.request("fail now", Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(reset_code(&err), Some(ResetCode(0x321)), "{err}");
        let err = client.request("slow", Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert_eq!(
            &client.request("fine", Duration::from_secs(10)).await.unwrap()[..],
            b"fine"
        );
    });
}
