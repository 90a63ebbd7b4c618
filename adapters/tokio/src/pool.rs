//! A pool of sessions to one service, on tokio.

use crate::stream::Stream;
use crate::{Control, Session};

hawser_driver::declare_pool! {
    /// A pool of sessions to one service: streams go to the least-loaded healthy
    /// session, another session is dialled when all are full (up to
    /// `max_sessions`), and sessions that go unhealthy (missed pings), draining
    /// (go-away) or closed are taken out at once and replaced in the background,
    /// with backoff. Resumable sessions that are detached get no new streams until
    /// they have resumed. Sessions beyond `min_sessions` are closed after
    /// `idle_timeout` without streams.
    ///
    /// The pool counts the streams opened through it (a [`PoolStream`] holds its
    /// place until dropped); streams the peer opens on a pool session are not
    /// accepted by anyone and are refused once the accept backlog is full.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hawser_tokio::{Config, Listener, Pool, PoolConfig, Session};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// // An echo service.
    /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn(async move {
    ///     while let Ok((session, _)) = listener.accept().await {
    ///         tokio::spawn(async move {
    ///             while let Some(stream) = session.accept().await {
    ///                 tokio::spawn(async move {
    ///                     let (mut from, mut to) = tokio::io::split(stream);
    ///                     tokio::io::copy(&mut from, &mut to).await?;
    ///                     to.shutdown().await
    ///                 });
    ///             }
    ///         });
    ///     }
    /// });
    ///
    /// let config = PoolConfig {
    ///     min_sessions: 2,
    ///     max_sessions: 4,
    ///     streams_per_session: 16,
    ///     open_timeout: Duration::from_secs(5),
    ///     ..PoolConfig::default()
    /// };
    /// let pool = Pool::new(config, move || Session::connect(addr, Config::default()))?;
    /// pool.warmup().await?; // two sessions dialled
    /// let mut stream = pool.open_stream().await?;
    /// stream.write_all(b"pooled").await?;
    /// stream.shutdown().await?;
    /// let mut reply = Vec::new();
    /// stream.read_to_end(&mut reply).await?;
    /// assert_eq!(reply, b"pooled");
    /// assert_eq!(pool.stats().live, 2);
    /// # Ok(()) }
    /// ```
    runtime: crate::Tokio,
    session: Session,
    control: Control,
    stream: Stream,
}

crate::stream::tokio_io!(PoolStream);
