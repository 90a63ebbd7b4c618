//! The server's links, spread over one single-threaded runtime per core.
//!
//! A session's driver and its streams' tasks hand each other bytes all the
//! time. On a multi-threaded runtime they land on different threads, share
//! the session's state between caches, and every hand-over may wake another
//! thread (a system call, and on a virtual machine an interrupt between
//! processors). Here each link is served, from its TLS handshake to its last
//! stream, on one thread that also runs its sockets' I/O; the links are dealt
//! out to the threads in turn, so a server with many clients still uses
//! every core.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use tokio::runtime::Handle;

/// Runtimes of one thread each, to spawn links on.
#[derive(Debug)]
pub struct Cores {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Cores {
    /// Starts `threads` threads (at least one), each running its own
    /// single-threaded runtime until the process ends.
    pub fn start(threads: usize) -> io::Result<Cores> {
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let (tell, told) = mpsc::channel();
            std::thread::Builder::new()
                .name(format!("hawser-core-{index}"))
                .spawn(
                    move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => {
                            let _ = tell.send(Ok(runtime.handle().clone()));
                            // Runs what is spawned on it; ends with the process.
                            runtime.block_on(std::future::pending::<()>());
                        }
                        Err(err) => {
                            let _ = tell.send(Err(err));
                        }
                    },
                )?;
            let handle = told
                .recv()
                .map_err(|_| io::Error::other("a runtime thread ended before it started"))??;
            handles.push(handle);
        }
        Ok(Cores {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// As many threads as the machine has cores (one if that is unknown).
    pub fn per_core() -> io::Result<Cores> {
        Cores::start(std::thread::available_parallelism().map_or(1, |cores| cores.get()))
    }

    /// How many threads there are.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next thread in turn.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[turn].spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tasks_are_dealt_out_to_every_thread_in_turn() {
        let cores = Cores::start(3).expect("three runtime threads");
        assert_eq!(cores.threads(), 3);
        let (tell, told) = mpsc::channel();
        for _ in 0..6 {
            let tell = tell.clone();
            cores.spawn(async move {
                // Timers and sockets work there: the runtime has its drivers.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a socket");
                drop(listener);
                let _ = tell.send(std::thread::current().name().map(str::to_owned));
            });
        }
        let mut names: Vec<_> = (0..6)
            .map(|_| {
                told.recv_timeout(Duration::from_secs(10))
                    .expect("every task ran")
                    .expect("the threads are named")
            })
            .collect();
        names.sort();
        let expected = [
            "hawser-core-0",
            "hawser-core-0",
            "hawser-core-1",
            "hawser-core-1",
            "hawser-core-2",
            "hawser-core-2",
        ];
        assert_eq!(names, expected);
    }
}
