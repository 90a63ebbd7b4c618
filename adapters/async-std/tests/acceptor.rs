//! The resumable server's accept loop: one bad client delays nobody.
#![cfg(feature = "async-std")]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use futures_io::{AsyncRead, AsyncWrite};
use hawser_async_std::{Acceptor, Config, Resumption, RetryPolicy, Session};

fn resumable() -> Config {
    Config {
        resumption: Some(Resumption::default()),
        // Far longer than the test: a serial accept loop would sit on the
        // silent client for all of it.
        handshake_timeout: Duration::from_secs(120),
        ..Config::default()
    }
}

async fn read_to_end(mut reader: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut buf)).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_silent_and_a_garbage_client_do_not_delay_a_good_one() {
    async_std::task::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = Acceptor::<TcpStream>::new(resumable()).unwrap().serve(listener);

        let silent = TcpStream::connect(addr).await.unwrap();
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        let junk = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
        poll_fn(|cx| Pin::new(&mut garbage).poll_write(cx, junk)).await.unwrap();
        // Refused and closed: a go-away, then end-of-file or a reset (the server
        // left the rest of the garbage unread).
        let _ = async_std::future::timeout(Duration::from_secs(10), read_to_end(&mut garbage))
            .await
            .expect("the garbage client's link is closed");

        let client = Session::connect_resumable(addr, resumable(), RetryPolicy::default())
            .await
            .unwrap();
        let mut stream = client.open_stream().await.unwrap();
        poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, b"hello"))
            .await
            .unwrap();
        poll_fn(|cx| Pin::new(&mut stream).poll_close(cx)).await.unwrap();
        let session = async_std::future::timeout(Duration::from_secs(10), incoming.next())
            .await
            .expect("the good client is served")
            .expect("the loop runs");
        let inbound = session.accept().await.expect("the stream arrives");
        assert_eq!(read_to_end(inbound).await.unwrap(), b"hello");

        // The silent client's link is still waiting for its handshake.
        let mut byte = [0u8; 1];
        let mut silent = silent;
        let still_open = async_std::future::timeout(
            Duration::from_millis(50),
            poll_fn(|cx| Pin::new(&mut silent).poll_read(cx, &mut byte)),
        )
        .await;
        assert!(still_open.is_err(), "the silent link was closed: {still_open:?}");
    });
}

#[test]
fn a_client_that_sends_nothing_times_out() {
    async_std::task::block_on(async {
        let config = Config {
            handshake_timeout: Duration::from_millis(200),
            ..resumable()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _silent = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (link, _) = listener.accept().await.unwrap();
        let acceptor = Acceptor::new(config).unwrap();
        let outcome = async_std::future::timeout(Duration::from_secs(10), acceptor.accept(link))
            .await
            .expect("the acceptor gives up by itself");
        assert_eq!(outcome.err().map(|err| err.kind()), Some(std::io::ErrorKind::TimedOut));
    });
}
