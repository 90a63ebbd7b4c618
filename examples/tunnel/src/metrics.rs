//! `--metrics ADDR`: the server's and the client's figures in the
//! Prometheus text format (version 0.0.4), served over plain HTTP at
//! `/metrics`. Bind it to a loopback or management address: it has no
//! authentication, though it carries no secret.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One metric family: a name, its help and type, and its samples (labels
/// as `key="value"` pairs, already escaped, and the value).
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(String, f64)>,
}

/// The Prometheus metric types the tunnel uses.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Only ever goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Family {
    /// A family with one sample without labels.
    pub fn single(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Family {
        Family {
            name,
            help,
            kind,
            samples: vec![(String::new(), value)],
        }
    }

    /// A family with one sample per label value of `label`.
    pub fn labelled(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        label: &'static str,
        samples: impl IntoIterator<Item = (String, f64)>,
    ) -> Family {
        Family::multi(
            name,
            help,
            kind,
            samples
                .into_iter()
                .map(|(value, sample)| (vec![(label, value)], sample)),
        )
    }

    /// A family whose samples each carry several labels, as `(key, value)`
    /// pairs.
    pub fn multi(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, f64)>,
    ) -> Family {
        Family {
            name,
            help,
            kind,
            samples: samples
                .into_iter()
                .map(|(labels, sample)| {
                    let labels: Vec<String> = labels
                        .iter()
                        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                        .collect();
                    (labels.join(","), sample)
                })
                .collect(),
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The text format of `families`.
pub fn render(families: &[Family]) -> String {
    let mut text = String::new();
    for family in families {
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(text, "# TYPE {} {kind}", family.name);
        for (labels, value) in &family.samples {
            // A sum of nothing is -0.0 in f64; a scraper should read 0.
            let value = if *value == 0.0 { 0.0 } else { *value };
            if labels.is_empty() {
                let _ = writeln!(text, "{} {value}", family.name);
            } else {
                let _ = writeln!(text, "{}{{{labels}}} {value}", family.name);
            }
        }
    }
    text
}

/// Why links and streams were refused, counted for the metrics.
#[derive(Default, Debug)]
pub struct Refusals {
    /// A target or reverse address outside the allow rules.
    pub not_allowed: AtomicU64,
    /// The target could not be resolved or reached.
    pub unreachable: AtomicU64,
    /// The target did not answer in time.
    pub timeout: AtomicU64,
    /// A malformed stream request.
    pub bad_request: AtomicU64,
    /// A link whose token proof failed or was rate-limited.
    pub authentication: AtomicU64,
    /// A link whose TLS did not match the server's (plaintext against TLS,
    /// or the reverse).
    pub tls_mismatch: AtomicU64,
}

impl Refusals {
    /// The `reason` label values and their counts.
    pub fn samples(&self) -> Vec<(String, f64)> {
        [
            ("not_allowed", &self.not_allowed),
            ("unreachable", &self.unreachable),
            ("timeout", &self.timeout),
            ("bad_request", &self.bad_request),
            ("authentication", &self.authentication),
            ("tls_mismatch", &self.tls_mismatch),
        ]
        .into_iter()
        .map(|(reason, count)| (reason.to_string(), count.load(Ordering::Relaxed) as f64))
        .collect()
    }
}

/// A duration in seconds, for a gauge; `NaN` when there is none (the
/// text format's way to say "no value").
pub fn seconds(duration: Option<Duration>) -> f64 {
    duration.map_or(f64::NAN, |d| d.as_secs_f64())
}

/// Serves `GET /metrics` on `listener` until the task is dropped, each
/// answer made by `families`. Anything else gets 404; a request that does
/// not arrive within 5 s is dropped.
pub async fn serve<F>(listener: TcpListener, families: Arc<F>)
where
    F: Fn() -> Vec<Family> + Send + Sync + 'static,
{
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let families = families.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            let read_head = async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                true
            };
            if !matches!(tokio::time::timeout(Duration::from_secs(5), read_head).await, Ok(true)) {
                return;
            }
            let wanted = request.starts_with(b"GET /metrics ") || request.starts_with(b"GET /metrics?");
            let (status, body) = if wanted {
                ("200 OK", render(&families()))
            } else {
                tracing::debug!(%peer, "metrics: not GET /metrics");
                ("404 Not Found", "only /metrics is served\n".to_string())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tcp.write_all(head.as_bytes()).await;
            let _ = tcp.write_all(body.as_bytes()).await;
            let _ = tcp.shutdown().await;
        });
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot serve metrics on {addr}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_help_type_and_escaped_labels() {
        let text = render(&[
            Family::single("t_open", "Open now.", Kind::Gauge, 3.0),
            Family::labelled(
                "t_refusals_total",
                "Refusals.",
                Kind::Counter,
                "reason",
                [("a\"b".to_string(), 1.0)],
            ),
        ]);
        assert_eq!(
            text,
            "# HELP t_open Open now.\n# TYPE t_open gauge\nt_open 3\n\
             # HELP t_refusals_total Refusals.\n# TYPE t_refusals_total counter\nt_refusals_total{reason=\"a\\\"b\"} 1\n"
        );
        assert!(render(&[Family::single("t_rtt", "RTT.", Kind::Gauge, seconds(None))]).ends_with("t_rtt NaN\n"));
        let nothing: f64 = std::iter::empty::<f64>().sum();
        assert!(render(&[Family::single("t_resumes", "Resumes.", Kind::Gauge, nothing)]).ends_with("t_resumes 0\n"));
    }
}
