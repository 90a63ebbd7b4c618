//! A session that ends right after sending its last data: the peer still reads
//! all of it. The peer keeps sending window updates until it has read the end
//! of each stream; if they met a socket closed for reading, its reset would
//! throw away what the peer had not read yet.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use hawser_blocking::{BlockingLink, Config, Session};

/// A TCP link whose reads are small and slow, so that the data the peer sends
/// waits in the socket for a while.
struct SlowReads(TcpStream);

impl Read for SlowReads {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        thread::sleep(Duration::from_millis(1));
        let len = buf.len().min(8 * 1024);
        self.0.read(&mut buf[..len])
    }
}

impl Write for SlowReads {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl BlockingLink for SlowReads {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(SlowReads(self.0.try_clone()?))
    }

    fn shutdown(&self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Both)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(timeout)
    }
}

#[test]
fn a_session_that_ends_after_its_last_data_loses_none_of_it() {
    for round in 0..3 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client_tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let server = Session::server(listener.accept().unwrap().0, Config::default()).unwrap();
        let client = Session::client(SlowReads(client_tcp), Config::default()).unwrap();
        let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        // The server writes its data, finishes, and lets go of everything: its
        // session ends as soon as the data and the FIN are out.
        let serving = thread::spawn(move || {
            let mut stream = server.accept().expect("one stream");
            stream.write_all(&sent).unwrap();
            stream.finish().unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            drop(stream);
            drop(server);
        });
        let mut stream = client.open_stream().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20)));
        stream.finish().unwrap();
        let mut received = Vec::new();
        let result = stream.read_to_end(&mut received);
        serving.join().unwrap();
        assert!(
            result.is_ok(),
            "round {round}: the read failed after {} of {} bytes: {result:?}",
            received.len(),
            data.len()
        );
        assert!(received == data, "round {round}: the data came back changed");
    }
}
