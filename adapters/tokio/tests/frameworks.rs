//! hawser-tokio under tokio's HTTP stack, as its users run it: hyper's
//! client and server, tonic's channel and server, and axum, each over
//! hawser streams; and each again over a resumable session whose link is
//! killed while a call is under way, the call completing intact.

use std::sync::Arc;
use std::time::Duration;

use hawser_conformance::faults::KillProxy;
use hawser_tokio::http::{Connector, InboundStreams, SessionListener};
use hawser_tokio::{Acceptor, Config, Incoming as Sessions, Listener, Resumption, RetryPolicy, Session};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

/// Far longer than any of these takes; a hang fails instead of stalling.
const LIMIT: Duration = Duration::from_secs(60);
const CONCURRENT: usize = 100;
const SLOW_BODY: usize = 1 << 20;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7) ^ seed.wrapping_mul(13)) as u8)
        .collect()
}

/// A client session and the server session it reached: directly, or (when
/// resumable) through a proxy that can kill the link.
struct Pair {
    client: Session,
    server: Session,
    proxy: Option<KillProxy>,
    /// Keeps the acceptor taking the client's new links.
    _incoming: Option<Sessions>,
}

async fn sessions(resumable: bool) -> Pair {
    if !resumable {
        let listener = Listener::bind("127.0.0.1:0", Config::default()).await.expect("bind");
        let client = Session::connect(listener.local_addr().expect("bound"), Config::default())
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        return Pair {
            client,
            server,
            proxy: None,
            _incoming: None,
        };
    }
    let config = Config {
        resumption: Some(Resumption::default()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = KillProxy::start(listener.local_addr().expect("bound")).expect("proxy");
    let mut incoming = Acceptor::new(config.clone()).expect("valid config").serve(listener);
    let client = Session::connect_resumable(proxy.addr(), config, RetryPolicy::default())
        .await
        .expect("connect");
    let server = incoming.next().await.expect("a session");
    Pair {
        client,
        server,
        proxy: Some(proxy),
        _incoming: Some(incoming),
    }
}

/// What a slow call's handler shares with the test: it says when the
/// request has arrived, then waits for the gate before answering.
#[derive(Default)]
struct Slow {
    arrived: Notify,
    gate: Notify,
}

impl Slow {
    async fn answer(&self) -> Bytes {
        self.arrived.notify_one();
        self.gate.notified().await;
        Bytes::from(pattern(99, SLOW_BODY))
    }

    /// Waits until the call is under way, kills the link under it, and lets
    /// the handler answer.
    async fn kill_mid_call(&self, proxy: &KillProxy) {
        self.arrived.notified().await;
        assert!(proxy.kill_all() >= 1, "a link to kill");
        self.gate.notify_one();
    }
}

fn http_client(session: &Session) -> Client<Connector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(Connector::new(session.control()))
}

/// `CONCURRENT` POSTs at once, each echoed intact.
async fn concurrent_echoes(client: &Client<Connector, Full<Bytes>>) {
    let calls = (0..CONCURRENT).map(|i| async move {
        let sent = pattern(i, 1000 + 37 * i);
        let request = hyper::Request::post("http://hawser.invalid/echo")
            .body(Full::new(Bytes::from(sent.clone())))
            .expect("valid request");
        let response = client.request(request).await.expect("a response");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.expect("the body").to_bytes();
        assert!(body == sent, "request {i} came back changed");
    });
    futures::future::join_all(calls).await;
}

/// GET /slow, answered once the test opens the gate.
async fn slow_call(client: &Client<Connector, Full<Bytes>>) {
    let response = client
        .get("http://hawser.invalid/slow".parse().expect("valid"))
        .await
        .expect("a response");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.expect("the body").to_bytes();
    assert!(body == pattern(99, SLOW_BODY), "the slow answer came back changed");
}

/// Each of `session`'s inbound streams as an HTTP/2 connection, served by
/// hyper: /echo returns the body, /slow waits for its gate.
fn serve_with_hyper(session: Session, slow: Arc<Slow>) {
    tokio::spawn(async move {
        while let Some(stream) = session.accept().await {
            let slow = slow.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let slow = slow.clone();
                async move {
                    let body = if request.uri().path() == "/slow" {
                        slow.answer().await
                    } else {
                        request.into_body().collect().await?.to_bytes()
                    };
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
}

/// The same two routes in axum, served through `SessionListener`.
fn serve_with_axum(session: Session, slow: Arc<Slow>) {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/slow", get(move || async move { slow.answer().await }));
    tokio::spawn(async move { axum::serve(SessionListener::new(session), app).await });
}

async fn http_scenario(resumable: bool, serve: fn(Session, Arc<Slow>)) {
    // `_incoming` bound, not dropped: it takes the client's next links.
    let Pair {
        client,
        server,
        proxy,
        _incoming,
    } = sessions(resumable).await;
    let slow = Arc::new(Slow::default());
    serve(server, slow.clone());
    let http = http_client(&client);
    concurrent_echoes(&http).await;
    match &proxy {
        Some(proxy) => {
            tokio::join!(slow_call(&http), slow.kill_mid_call(proxy));
            assert!(client.reconnects() >= 1, "the session resumed on a new link");
            concurrent_echoes(&http).await;
        }
        None => {
            slow.gate.notify_one();
            slow_call(&http).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_serves_a_hundred_concurrent_requests() {
    tokio::time::timeout(LIMIT, http_scenario(false, serve_with_hyper))
        .await
        .expect("done in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_call_survives_a_killed_link() {
    tokio::time::timeout(LIMIT, http_scenario(true, serve_with_hyper))
        .await
        .expect("done in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_serves_through_a_session() {
    tokio::time::timeout(LIMIT, http_scenario(false, serve_with_axum))
        .await
        .expect("done in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_call_survives_a_killed_link() {
    tokio::time::timeout(LIMIT, http_scenario(true, serve_with_axum))
        .await
        .expect("done in time");
}

mod grpc {
    //! tonic's generated health service: `Check` is a unary call, `Watch`
    //! a server-streaming one.

    use super::*;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::server::HealthReporter;

    const SERVICE: &str = "hawser.Test";

    fn serve_with_tonic(session: Session) -> HealthReporter {
        let (reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(
            Server::builder()
                .add_service(health)
                .serve_with_incoming(InboundStreams::new(session)),
        );
        reporter
    }

    fn request(service: &str) -> HealthCheckRequest {
        HealthCheckRequest {
            service: service.to_string(),
        }
    }

    async fn scenario(resumable: bool) {
        let Pair {
            client,
            server,
            proxy,
            _incoming,
        } = sessions(resumable).await;
        let reporter = serve_with_tonic(server);
        reporter
            .set_service_status(SERVICE, tonic_health::ServingStatus::Serving)
            .await;
        let channel = Endpoint::from_static("http://hawser.invalid")
            .connect_with_connector(Connector::new(client.control()))
            .await
            .expect("a channel");
        let health = HealthClient::new(channel);

        let checks = (0..CONCURRENT).map(|_| {
            let mut health = health.clone();
            async move {
                let answer = health.check(request(SERVICE)).await.expect("unary call");
                assert_eq!(answer.into_inner().status(), ServingStatus::Serving);
            }
        });
        futures::future::join_all(checks).await;

        let mut watch = health
            .clone()
            .watch(request(SERVICE))
            .await
            .expect("streaming call")
            .into_inner();
        let first = watch.message().await.expect("a status").expect("not ended");
        assert_eq!(first.status(), ServingStatus::Serving);
        if let Some(proxy) = &proxy {
            assert!(proxy.kill_all() >= 1, "a link to kill");
        }
        reporter
            .set_service_status(SERVICE, tonic_health::ServingStatus::NotServing)
            .await;
        let second = watch.message().await.expect("a status").expect("not ended");
        assert_eq!(second.status(), ServingStatus::NotServing);
        if proxy.is_some() {
            assert!(client.reconnects() >= 1, "the session resumed on a new link");
        }
        let answer = health.clone().check(request(SERVICE)).await.expect("unary call");
        assert_eq!(answer.into_inner().status(), ServingStatus::NotServing);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tonic_unary_and_server_streaming_calls() {
        tokio::time::timeout(LIMIT, scenario(false))
            .await
            .expect("done in time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tonic_stream_survives_a_killed_link() {
        tokio::time::timeout(LIMIT, scenario(true)).await.expect("done in time");
    }
}

/// The listener has no address of its own and says so.
#[tokio::test]
async fn the_session_listener_has_no_local_address() {
    use axum::serve::Listener as _;
    let Pair { server, .. } = sessions(false).await;
    let err = SessionListener::new(server).local_addr().expect_err("no address");
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}
