//! hawser under tokio's HTTP stack: hyper's client and tonic's channels open
//! a stream per connection through [`Connector`]; tonic serves a session's
//! inbound streams from [`InboundStreams`]; axum serves them through
//! [`SessionListener`]. Each is behind the feature of its name (`hyper`,
//! `tonic`, `axum`).
//!
//! Every HTTP connection is one hawser stream, so many HTTP/2 connections
//! (or one HTTP/2 connection with many requests) share one link, and over a
//! resumable session they survive the link's loss.

#[cfg(feature = "hyper")]
pub use connector::{Connector, HttpStream};
#[cfg(feature = "tonic")]
pub use inbound::InboundStreams;
#[cfg(feature = "axum")]
pub use listener::SessionListener;

#[cfg(feature = "hyper")]
mod connector {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper_util::client::legacy::connect::{Connected, Connection};
    use hyper_util::rt::TokioIo;

    use crate::{Control, Stream, StreamId};

    /// A tower `Service<Uri>` that opens a stream of one session per call,
    /// whatever the URI: hyper's client and tonic's
    /// `Endpoint::connect_with_connector` speak HTTP over it. The URI's
    /// authority still goes into requests (`Host`, `:authority`), so the
    /// server can route by it.
    ///
    /// Opening waits while the session's stream limits are reached, and
    /// fails once the session has ended (over a resumable session, it waits
    /// through a reconnection instead).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use http_body_util::{BodyExt, Full};
    /// use hyper::body::Bytes;
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::{TokioExecutor, TokioIo};
    ///
    /// // A server: HTTP/2 on every inbound stream of every session.
    /// let listener = hawser_tokio::Listener::bind("127.0.0.1:0", hawser_tokio::Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn(async move {
    ///     while let Ok((session, _peer)) = listener.accept().await {
    ///         tokio::spawn(async move {
    ///             while let Some(stream) = session.accept().await {
    ///                 let hello = hyper::service::service_fn(|_request| async {
    ///                     Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("hello"))))
    ///                 });
    ///                 let serving = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
    ///                     .serve_connection(TokioIo::new(stream), hello);
    ///                 tokio::spawn(serving);
    ///             }
    ///         });
    ///     }
    /// });
    ///
    /// // A client: hyper's, every connection a stream of one session.
    /// let session = hawser_tokio::Session::connect(addr, hawser_tokio::Config::default()).await?;
    /// let client = Client::builder(TokioExecutor::new())
    ///     .http2_only(true)
    ///     .build::<_, Full<Bytes>>(hawser_tokio::http::Connector::new(session.control()));
    /// let response = client.get("http://hawser.invalid/".parse()?).await?;
    /// assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Clone, Debug)]
    pub struct Connector {
        control: Control,
    }

    impl Connector {
        /// A connector that opens its streams on `control`'s session.
        pub fn new(control: Control) -> Connector {
            Connector { control }
        }
    }

    impl tower_service::Service<http::Uri> for Connector {
        type Response = HttpStream;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<HttpStream>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _uri: http::Uri) -> Self::Future {
            let control = self.control.clone();
            Box::pin(async move { control.open_stream().await.map(HttpStream::new) })
        }
    }

    /// A [`Stream`] in hyper's I/O traits (`hyper::rt::Read` and `Write`),
    /// as [`Connector`] gives it; hyper's servers take one too.
    pub struct HttpStream {
        io: TokioIo<Stream>,
    }

    impl std::fmt::Debug for HttpStream {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpStream").field("id", &self.id()).finish()
        }
    }

    impl HttpStream {
        /// Wraps `stream`.
        pub fn new(stream: Stream) -> HttpStream {
            HttpStream {
                io: TokioIo::new(stream),
            }
        }

        /// The stream's id.
        pub fn id(&self) -> StreamId {
            self.io.inner().id()
        }

        /// The stream inside.
        pub fn into_inner(self) -> Stream {
            self.io.into_inner()
        }
    }

    impl Connection for HttpStream {
        fn connected(&self) -> Connected {
            Connected::new()
        }
    }

    impl hyper::rt::Read for HttpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
        }
    }

    impl hyper::rt::Write for HttpStream {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
        }
    }
}

#[cfg(feature = "tonic")]
mod inbound {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use crate::{Session, Stream, StreamId};

    /// A session's inbound streams as a `futures_core::Stream`, for tonic's
    /// `Server::serve_with_incoming` (each stream is one HTTP/2 connection);
    /// it ends once the session is closed or draining. Each stream's
    /// `Connected` info for tonic's requests is its [`StreamId`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tonic::transport::{Endpoint, Server};
    /// use tonic_health::pb::health_client::HealthClient;
    /// use tonic_health::pb::HealthCheckRequest;
    ///
    /// let listener = hawser_tokio::Listener::bind("127.0.0.1:0", hawser_tokio::Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn(async move {
    ///     let (session, _peer) = listener.accept().await.expect("a session");
    ///     let (_reporter, health) = tonic_health::server::health_reporter();
    ///     Server::builder()
    ///         .add_service(health)
    ///         .serve_with_incoming(hawser_tokio::http::InboundStreams::new(session))
    ///         .await
    /// });
    ///
    /// let session = hawser_tokio::Session::connect(addr, hawser_tokio::Config::default()).await?;
    /// let channel = Endpoint::from_static("http://hawser.invalid")
    ///     .connect_with_connector(hawser_tokio::http::Connector::new(session.control()))
    ///     .await?;
    /// let answer = HealthClient::new(channel).check(HealthCheckRequest::default()).await?;
    /// assert_eq!(answer.into_inner().status, 1); // SERVING
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct InboundStreams {
        session: Session,
    }

    impl InboundStreams {
        /// The inbound streams of `session`.
        pub fn new(session: Session) -> InboundStreams {
            InboundStreams { session }
        }

        /// The session they come from.
        pub fn session(&self) -> &Session {
            &self.session
        }
    }

    impl futures_core::Stream for InboundStreams {
        type Item = io::Result<Stream>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Stream>>> {
            self.session
                .poll_accept(cx)
                .map(|core| core.map(|core| Ok(Stream::from(core))))
        }
    }

    impl tonic::transport::server::Connected for Stream {
        type ConnectInfo = StreamId;

        fn connect_info(&self) -> StreamId {
            self.id()
        }
    }
}

#[cfg(feature = "axum")]
mod listener {
    use std::io;

    use crate::{Session, Stream, StreamId};

    /// axum's `Listener` over a session: `axum::serve` answers HTTP on each
    /// of its inbound streams. The address of each is its [`StreamId`]; the
    /// listener has none of its own (`local_addr` fails with `Unsupported`).
    ///
    /// Once the session has ended no stream comes, and `accept` waits for
    /// ever, as a TCP listener's does: end the server with
    /// `with_graceful_shutdown`, for example on the session's `closed()`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use http_body_util::{BodyExt, Empty};
    /// use hyper::body::Bytes;
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    ///
    /// let listener = hawser_tokio::Listener::bind("127.0.0.1:0", hawser_tokio::Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn(async move {
    ///     let (session, _peer) = listener.accept().await.expect("a session");
    ///     let control = session.control();
    ///     let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello from axum" }));
    ///     axum::serve(hawser_tokio::http::SessionListener::new(session), app)
    ///         .with_graceful_shutdown(async move {
    ///             let _ = control.closed().await;
    ///         })
    ///         .await
    /// });
    ///
    /// let session = hawser_tokio::Session::connect(addr, hawser_tokio::Config::default()).await?;
    /// let client = Client::builder(TokioExecutor::new())
    ///     .http2_only(true)
    ///     .build::<_, Empty<Bytes>>(hawser_tokio::http::Connector::new(session.control()));
    /// let response = client.get("http://hawser.invalid/".parse()?).await?;
    /// assert_eq!(response.into_body().collect().await?.to_bytes(), "hello from axum");
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct SessionListener {
        session: Session,
    }

    impl SessionListener {
        /// A listener over `session`'s inbound streams.
        pub fn new(session: Session) -> SessionListener {
            SessionListener { session }
        }
    }

    impl axum::serve::Listener for SessionListener {
        type Io = Stream;
        type Addr = StreamId;

        async fn accept(&mut self) -> (Stream, StreamId) {
            match self.session.accept().await {
                Some(stream) => {
                    let id = stream.id();
                    (stream, id)
                }
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> io::Result<StreamId> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a hawser session has no address of its own",
            ))
        }
    }
}
