//! The hawser-tokio harness shared by the conformance and interop tests.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hawser_conformance::harness::{Harness, HarnessSession, HarnessStream, RawLink};
use hawser_core::{Config, ResetCode, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Tokio;

#[derive(Clone)]
pub struct Session(pub Arc<hawser_tokio::Session>);

pub struct Stream(hawser_tokio::Stream);

pub struct Raw(TcpStream);

pub async fn loopback() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    Ok((dialled?, accepted?.0))
}

impl Harness for Tokio {
    type Session = Session;
    type Raw = Raw;

    async fn pair(client: Config, server: Config) -> io::Result<(Session, Session)> {
        let (a, b) = loopback().await?;
        let client = hawser_tokio::Session::client(a, client)?;
        let server = hawser_tokio::Session::server(b, server)?;
        Ok((Session(Arc::new(client)), Session(Arc::new(server))))
    }

    async fn with_raw_peer(role: Role, config: Config) -> io::Result<(Session, Raw)> {
        let (a, b) = loopback().await?;
        let session = match role {
            Role::Client => hawser_tokio::Session::client(a, config)?,
            Role::Server => hawser_tokio::Session::server(a, config)?,
        };
        Ok((Session(Arc::new(session)), Raw(b)))
    }

    fn spawn<F>(task: F) -> impl Future<Output = ()> + Send
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        async move {
            if let Err(err) = handle.await {
                if err.is_panic() {
                    std::panic::resume_unwind(err.into_panic());
                }
            }
        }
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

impl HarnessSession for Session {
    type Stream = Stream;

    async fn open(&self) -> io::Result<Stream> {
        self.0.open_stream().await.map(Stream)
    }

    async fn accept(&self) -> Option<Stream> {
        self.0.accept().await.map(Stream)
    }

    fn control(&self) -> &hawser_driver::ControlCore {
        &self.0
    }
}

impl HarnessStream for Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).await
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data).await
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }

    fn reset(self, code: ResetCode) {
        self.0.reset(code);
    }

    fn reset_with_reason(self, code: ResetCode, reason: &str) {
        self.0.reset_with_reason(code, reason);
    }
}

impl RawLink for Raw {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data).await
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).await
    }
}

pub fn run(scenario: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), scenario)
            .await
            .unwrap_or_else(|_| Err("timed out after 60 s".into()))
    })
}
