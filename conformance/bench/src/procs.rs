//! Forwarders in processes of their own, and the CPU time they spend: what
//! the `tunnel` workload charges to each way of forwarding, apart from the
//! sender and the sink in the benchmark's own process.

use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process, killed when dropped; its stderr is kept in a file for
/// the error message when it does not start.
pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` and waits (at most 10 s) for a line on its stdout
    /// that starts with `ready`; returns the process and the rest of that
    /// line.
    pub fn start(mut command: Command, ready: &str, log: PathBuf) -> io::Result<(Process, String)> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
        let process = Process { child, log };
        let (lines, waiting) = mpsc::channel();
        // Reads stdout to its end, so that the child never blocks writing it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        loop {
            match waiting.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(ready) {
                        return Ok((process, rest.trim().to_string()));
                    }
                }
                Err(_) => {
                    let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                    return Err(io::Error::other(format!("no {ready:?} from the child; it said: {log}")));
                }
            }
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CPU time (user and system, all threads) that the processes `roots`
/// and their descendants have spent so far, including descendants that
/// have ended and been waited for. `None` where `/proc` cannot tell.
#[cfg(target_os = "linux")]
pub fn cpu_of(roots: &[u32]) -> Option<Duration> {
    // (pid, parent, ticks) of every process.
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces; the
        // fields after it are numbers.
        let Some(after) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After the name: state, ppid (field 4 of proc(5)), ..., utime, stime,
        // cutime, cstime (fields 14 to 17).
        let number = |field: usize| fields.get(field - 3).and_then(|f| f.parse::<u64>().ok());
        let (Some(parent), Some(user), Some(system), Some(children_user), Some(children_system)) =
            (number(4), number(14), number(15), number(16), number(17))
        else {
            continue;
        };
        all.push((pid, parent as u32, user + system + children_user + children_system));
    }
    let mut tree: Vec<u32> = roots.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, parent, _) in &all {
            if tree.contains(parent) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    let ticks: u64 = all
        .iter()
        .filter(|(pid, _, _)| tree.contains(pid))
        .map(|(_, _, ticks)| ticks)
        .sum();
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
}

#[cfg(not(target_os = "linux"))]
pub fn cpu_of(_roots: &[u32]) -> Option<Duration> {
    None
}

/// The kernel's unit for process times in `/proc`: `getconf CLK_TCK`, 100
/// on every Linux configuration in use.
#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}
