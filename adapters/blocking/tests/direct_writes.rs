//! Who writes to the link: a caller whose write finds the writer thread idle
//! writes its frames itself, and the writer thread is not woken for inputs
//! that leave nothing to send.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hawser_blocking::{BlockingLink, Config, Session};

/// A TCP link that records the name of every thread that writes to it.
struct Recording {
    tcp: TcpStream,
    writers: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn note(&self) {
        let name = thread::current().name().unwrap_or("unnamed").to_string();
        self.writers.lock().expect("no panics while recording").push(name);
    }
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.note();
        self.tcp.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.note();
        self.tcp.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl BlockingLink for Recording {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(Recording {
            tcp: self.tcp.try_clone()?,
            writers: self.writers.clone(),
        })
    }

    fn shutdown(&self) -> io::Result<()> {
        self.tcp.shutdown(Shutdown::Both)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }
}

#[test]
fn round_trips_are_written_by_the_threads_that_make_them() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    tcp.set_nodelay(true).unwrap();
    let writers = Arc::new(Mutex::new(Vec::new()));
    let client = Session::client(
        Recording {
            tcp,
            writers: writers.clone(),
        },
        Config::default(),
    )
    .unwrap();
    let server = Session::server(listener.accept().unwrap().0, Config::default()).unwrap();
    let echo = thread::spawn(move || {
        let mut stream = server.accept().expect("one stream");
        let mut buf = [0u8; 64];
        while stream.read_exact(&mut buf).is_ok() {
            stream.write_all(&buf).unwrap();
        }
    });

    let mut stream = client.open_stream().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reply = [0u8; 64];
    // The handshake and the first exchange settle the session.
    stream.write_all(&[1; 64]).unwrap();
    stream.read_exact(&mut reply).unwrap();
    writers.lock().unwrap().clear();

    let trips = 200;
    let caller = thread::current().name().unwrap_or("unnamed").to_string();
    for trip in 0..trips {
        let request = [trip as u8; 64];
        stream.write_all(&request).unwrap();
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(reply, request, "round trip {trip}");
    }
    let seen = writers.lock().unwrap().clone();
    let by_caller = seen.iter().filter(|name| **name == caller).count();
    let by_writer = seen.len() - by_caller;
    // A slow machine may find the writer busy now and then (a keepalive ping,
    // say), but the caller writes nearly every request itself, and the
    // replies' arrival gives the writer thread nothing to do.
    assert!(
        by_caller >= trips * 9 / 10,
        "{by_caller} of {} link writes were the caller's ({by_writer} the writer thread's)",
        seen.len()
    );
    assert!(by_writer <= trips / 10, "the writer thread wrote {by_writer} times");

    stream.finish().unwrap();
    drop(stream);
    client.close(hawser_blocking::GoAwayCode::NORMAL);
    echo.join().unwrap();
}

#[test]
fn direct_writes_from_many_threads_keep_every_stream_intact() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let client = Arc::new(Session::client(tcp, Config::default()).unwrap());
    let server = Session::server(listener.accept().unwrap().0, Config::default()).unwrap();
    let (done, all_read) = std::sync::mpsc::channel::<()>();
    let echo = thread::spawn(move || {
        let mut handlers = Vec::new();
        while let Some(stream) = server.accept() {
            handlers.push(thread::spawn(move || {
                let (mut reader, mut writer) = stream.split();
                io::copy(&mut reader, &mut writer).unwrap();
            }));
            if handlers.len() == 8 {
                break;
            }
        }
        for handler in handlers {
            handler.join().unwrap();
        }
        // The server session ends only once the client has read everything:
        // this test is about the streams, not about how a session closes.
        let _ = all_read.recv();
    });

    let senders: Vec<_> = (0..8u8)
        .map(|seed| {
            let client = client.clone();
            thread::spawn(move || {
                let (mut reader, mut writer) = client.open_stream().unwrap().split();
                reader.set_read_timeout(Some(Duration::from_secs(20)));
                let data: Vec<u8> = (0..256 * 1024).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
                let expected = data.clone();
                let sending = thread::spawn(move || {
                    // Writes of many sizes: some fit a direct write, some are
                    // left to the writer thread.
                    for chunk in data.chunks(1000 + 7919 * usize::from(seed)) {
                        writer.write_all(chunk).unwrap();
                    }
                    writer.finish().unwrap();
                });
                let mut echoed = Vec::new();
                reader.read_to_end(&mut echoed).unwrap();
                sending.join().unwrap();
                assert!(echoed == expected, "stream {seed} came back changed");
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    drop(done);
    echo.join().unwrap();
}
