//! A resumable client as a program uses it: the first dial is retried, the
//! session is ready when `connect_resumable` returns, and a session the server
//! cannot resume ends with the reason, for `closed()` and the link events alike.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_conformance::faults::KillProxy;
use hawser_tokio::{
    session_error, Acceptor, Config, GoAwayCode, LinkEvent, Resumption, RetryPolicy, Session, SessionError,
};
use tokio::net::{TcpListener, TcpStream};

fn config() -> Config {
    Config {
        resumption: Some(Resumption::default()),
        ..Config::default()
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

/// A resumable server on `listener` whose sessions accept streams until they end.
fn serve(listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let mut incoming = Acceptor::<TcpStream>::new(config()).unwrap().serve(listener);
    tokio::spawn(async move {
        while let Some(session) = incoming.next().await {
            tokio::spawn(async move { while session.accept().await.is_some() {} });
        }
    })
}

#[tokio::test]
async fn the_first_dial_is_retried_until_the_server_is_up() {
    // Reserve a port, then leave it closed for a while.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let late_server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server = serve(TcpListener::bind(addr).await.unwrap());
        // Keep serving until the test ends.
        let _ = server.await;
    });
    let session = tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect_resumable(addr, config(), quick_retry()),
    )
    .await
    .expect("connect_resumable returns")
    .expect("a dial succeeds once the server is up");
    assert!(
        session.is_resumable(),
        "returned before the session could survive a drop"
    );
    late_server.abort();
}

#[tokio::test]
async fn the_first_dial_gives_up_under_the_policy() {
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let retry = RetryPolicy {
        max_attempts: 3,
        ..quick_retry()
    };
    let err = Session::connect_resumable(addr, config(), retry)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_session_the_server_cannot_resume_ends_with_the_reason() {
    // Server A behind a proxy that can kill the link; server B, which never
    // heard of the session, stands in for A restarted.
    let listener_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = KillProxy::start(listener_a.local_addr().unwrap()).unwrap();
    let _server_a = serve(listener_a);
    let listener_b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr_b = listener_b.local_addr().unwrap();
    let _server_b = serve(listener_b);

    let target: Arc<Mutex<SocketAddr>> = Arc::new(Mutex::new(proxy.addr()));
    let dial_target = target.clone();
    let dial = move || {
        let addr = *dial_target.lock().unwrap();
        TcpStream::connect(addr)
    };
    let session = Session::connect_resumable_with(dial, config(), quick_retry())
        .await
        .unwrap();
    let control = session.control();
    let waiter = tokio::spawn(async move { control.closed().await });

    *target.lock().unwrap() = addr_b;
    proxy.kill_all();

    let err = tokio::time::timeout(Duration::from_secs(20), session.closed())
        .await
        .expect("the session ends")
        .expect_err("it could not be resumed");
    assert!(
        matches!(session_error(&err), Some(SessionError::ResumeRefused(_))),
        "ended with {err:?}"
    );
    let other = waiter.await.unwrap().expect_err("every waiter sees the end");
    assert_eq!(session_error(&other), session_error(&err));

    let mut last = None;
    while let Some(event) = session.next_link_event().await {
        last = Some(event);
    }
    assert_eq!(
        last,
        Some(LinkEvent::Ended {
            reason: session_error(&err)
        })
    );
}

async fn last_link_event(session: &Session) -> Option<LinkEvent> {
    let mut last = None;
    while let Some(event) = session.next_link_event().await {
        last = Some(event);
    }
    last
}

#[tokio::test]
async fn the_last_link_event_says_how_the_session_ended() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = serve(listener);

    // Closed by this side: the code, even NORMAL, as closed() reports it.
    let closed = Session::connect_resumable(addr, config(), quick_retry()).await.unwrap();
    closed.close(GoAwayCode::NORMAL);
    let ended = tokio::time::timeout(Duration::from_secs(10), last_link_event(&closed))
        .await
        .expect("the events end");
    let reason = Some(SessionError::LocallyClosed(GoAwayCode::NORMAL));
    assert_eq!(ended, Some(LinkEvent::Ended { reason }));
    let err = closed.closed().await.expect_err("a close is not an orderly end");
    assert_eq!(session_error(&err), reason);

    // Gone away, with nothing left to drain: an orderly end.
    let drained = Session::connect_resumable(addr, config(), quick_retry()).await.unwrap();
    drained.go_away(GoAwayCode::NORMAL).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), last_link_event(&drained))
        .await
        .expect("the events end");
    assert_eq!(ended, Some(LinkEvent::Ended { reason: None }));
    drained.closed().await.expect("a drained go-away is an orderly end");
}
