//! Pools of sessions to one service, on async-std and on smol: the pool of
//! hawser-driver, with futures-io's I/O traits on its streams.

#[cfg(feature = "async-std")]
use crate::stream::Stream;
#[cfg(feature = "async-std")]
use crate::{Control, Session};

#[cfg(feature = "async-std")]
hawser_driver::declare_pool! {
    /// A pool of sessions to one service, with the same policy as hawser-tokio's
    /// `Pool`: streams go to the least-loaded healthy session, another session is
    /// dialled when all are full (up to `max_sessions`), and sessions that go
    /// unhealthy, draining or closed are taken out at once and replaced in the
    /// background, with backoff. Detached resumable sessions get no new streams
    /// until they have resumed; sessions beyond `min_sessions` are closed after
    /// `idle_timeout` without streams. Needs the `async-std` feature: the pool's
    /// dials and upkeep run on async-std tasks.
    ///
    /// ```
    /// use hawser_async_std::{Config, Listener, Pool, PoolConfig, Session};
    /// use futures::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # async_std::task::block_on(async {
    /// // An echo service.
    /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// async_std::task::spawn(async move {
    ///     while let Ok((session, _)) = listener.accept().await {
    ///         async_std::task::spawn(async move {
    ///             while let Some(stream) = session.accept().await {
    ///                 async_std::task::spawn(async move {
    ///                     let (from, mut to) = stream.split();
    ///                     futures::io::copy(from, &mut to).await?;
    ///                     to.close().await
    ///                 });
    ///             }
    ///         });
    ///     }
    /// });
    ///
    /// let config = PoolConfig { min_sessions: 2, ..PoolConfig::default() };
    /// let pool = Pool::new(config, move || Session::connect(addr, Config::default()))?;
    /// pool.warmup().await?;
    /// let mut stream = pool.open_stream().await?;
    /// stream.write_all(b"pooled").await?;
    /// stream.close().await?;
    /// let mut reply = Vec::new();
    /// stream.read_to_end(&mut reply).await?;
    /// assert_eq!(reply, b"pooled");
    /// assert_eq!(pool.stats().live, 2);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    runtime: crate::AsyncStd,
    session: Session,
    control: Control,
    stream: Stream,
}

#[cfg(feature = "async-std")]
crate::stream::futures_io!(PoolStream);
