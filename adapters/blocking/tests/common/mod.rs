//! The hawser-blocking harness shared by the conformance and interop tests.
//!
//! The scenarios are async; here each blocking call runs on a thread of its own
//! and the scenario awaits its completion, so that a scenario can still race an
//! operation against a timeout.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use hawser_blocking::{Config, ResetCode, Role};
use hawser_conformance::harness::{Harness, HarnessSession, HarnessStream, RawLink};

pub struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

pub struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// Runs `work` on a new thread; the returned future resolves to its result.
pub fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> impl Future<Output = T> + Send {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let writer = slot.clone();
    thread::spawn(move || {
        let value = work();
        let mut slot = writer.lock().unwrap();
        slot.value = Some(value);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    });
    std::future::poll_fn(move |cx| {
        let mut slot = slot.lock().unwrap();
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
}

pub struct Blocking;

#[derive(Clone)]
pub struct Session(pub Arc<hawser_blocking::Session>);

/// The stream travels to the thread doing each blocking call and comes back.
pub struct Stream(Option<hawser_blocking::Stream>);

pub struct Raw(Option<TcpStream>);

pub fn loopback() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let dialled = TcpStream::connect(listener.local_addr()?)?;
    let (accepted, _) = listener.accept()?;
    Ok((dialled, accepted))
}

impl Harness for Blocking {
    type Session = Session;
    type Raw = Raw;

    async fn pair(client: Config, server: Config) -> io::Result<(Session, Session)> {
        let (a, b) = loopback()?;
        let client = hawser_blocking::Session::client(a, client)?;
        let server = hawser_blocking::Session::server(b, server)?;
        Ok((Session(Arc::new(client)), Session(Arc::new(server))))
    }

    async fn with_raw_peer(role: Role, config: Config) -> io::Result<(Session, Raw)> {
        let (a, b) = loopback()?;
        let session = hawser_blocking::Session::new(a, config, role)?;
        Ok((Session(Arc::new(session)), Raw(Some(b))))
    }

    fn spawn<F>(task: F) -> impl Future<Output = ()> + Send
    where
        F: Future<Output = ()> + Send + 'static,
    {
        off_thread(move || block_on(task))
    }

    async fn sleep(duration: Duration) {
        off_thread(move || thread::sleep(duration)).await;
    }
}

impl HarnessSession for Session {
    type Stream = Stream;

    async fn open(&self) -> io::Result<Stream> {
        let session = self.0.clone();
        off_thread(move || session.open_stream()).await.map(|s| Stream(Some(s)))
    }

    async fn accept(&self) -> Option<Stream> {
        let session = self.0.clone();
        off_thread(move || session.accept()).await.map(|s| Stream(Some(s)))
    }

    fn control(&self) -> &hawser_driver::ControlCore {
        &self.0
    }
}

pub fn gone() -> io::Error {
    io::Error::other("stream lost to an abandoned operation")
}

impl HarnessStream for Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut stream = self.0.take().ok_or_else(gone)?;
        let len = buf.len();
        let (stream, result) = off_thread(move || {
            let mut local = vec![0u8; len];
            let result = stream.read(&mut local).map(|n| {
                local.truncate(n);
                local
            });
            (stream, result)
        })
        .await;
        self.0 = Some(stream);
        let data = result?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut stream = self.0.take().ok_or_else(gone)?;
        let data = data.to_vec();
        let (stream, result) = off_thread(move || {
            let result = stream.write_all(&data);
            (stream, result)
        })
        .await;
        self.0 = Some(stream);
        result
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.0.as_mut().ok_or_else(gone)?.finish()
    }

    fn reset_with_reason(self, code: ResetCode, reason: &str) {
        if let Some(stream) = self.0 {
            stream.reset_with_reason(code, reason);
        }
    }

    fn reset(self, code: ResetCode) {
        if let Some(stream) = self.0 {
            stream.reset(code);
        }
    }
}

impl RawLink for Raw {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.as_mut().ok_or_else(gone)?.write_all(data)
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut raw = self.0.take().ok_or_else(gone)?;
        let len = buf.len();
        let (raw, result) = off_thread(move || {
            let mut local = vec![0u8; len];
            let result = raw.read(&mut local).map(|n| {
                local.truncate(n);
                local
            });
            (raw, result)
        })
        .await;
        self.0 = Some(raw);
        let data = result?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

pub fn run(scenario: impl Future<Output = Result<(), String>> + Send + 'static) -> Result<(), String> {
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(block_on(scenario));
    });
    match done_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => Err("timed out after 60 s".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the scenario panicked".into()),
    }
}
