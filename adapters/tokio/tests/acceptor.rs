//! The resumable server's accept loop: one bad client delays nobody.

use std::time::Duration;

use hawser_tokio::{Acceptor, Config, Resumption, RetryPolicy, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn resumable() -> Config {
    Config {
        resumption: Some(Resumption::default()),
        // Far longer than the test: a serial accept loop would sit on the
        // silent client for all of it.
        handshake_timeout: Duration::from_secs(120),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_silent_and_a_garbage_client_do_not_delay_a_good_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Acceptor::<TcpStream>::new(resumable()).unwrap().serve(listener);

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .await
        .unwrap();
    // Refused and closed: a go-away, then end-of-file or a reset (the server
    // left the rest of the garbage unread).
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), garbage.read_to_end(&mut answer))
        .await
        .expect("the garbage client's link is closed");

    let client = Session::connect_resumable(addr, resumable(), RetryPolicy::default())
        .await
        .unwrap();
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap();
    let session = tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .expect("the good client is served")
        .expect("the loop runs");
    let mut inbound = session.accept().await.expect("the stream arrives");
    let mut got = Vec::new();
    inbound.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hello");

    // All the while, the silent client's link was still waiting for its
    // handshake: nothing was read from it, nor was it closed.
    let mut byte = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(50), silent.read(&mut byte)).await;
    assert!(still_open.is_err(), "the silent link was closed: {still_open:?}");
}

#[tokio::test]
async fn a_resumable_acceptor_serves_a_client_that_cannot_resume() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Acceptor::<TcpStream>::new(resumable()).unwrap().serve(listener);
    let client = Session::client(TcpStream::connect(addr).await.unwrap(), Config::default()).unwrap();
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    let session = tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .expect("the client is served")
        .expect("the loop runs");
    let mut inbound = session.accept().await.expect("the stream arrives");
    let mut got = [0u8; 5];
    inbound.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello");
    inbound.write_all(b"world").await.unwrap();
    inbound.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"world");
    assert!(client.close_reason().is_none() && session.close_reason().is_none());
    assert!(!session.is_resumable());
}
