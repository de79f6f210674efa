//! The access log: one JSON line per request.
//!
//! Lines are formatted on the connection's task and written by a dedicated thread, so a slow
//! terminal or disk never stalls request handling. When the writer falls behind by more than
//! 16,384 lines (`QUEUE`), new lines are dropped and counted rather than queued without bound.
//! The query string is never logged: it can carry credentials.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use portico_config::AccessLog;
use portico_server::Exchange;

use crate::caller::{Caller, Routing};

/// Lines waiting for the writer thread before new ones are dropped.
const QUEUE: usize = 16 * 1024;

#[derive(Clone)]
enum Sink {
    Off,
    Thread(mpsc::SyncSender<String>),
    Channel(tokio::sync::mpsc::UnboundedSender<String>),
}

/// Where access-log lines go. Clones write to the same place (a reloaded configuration can
/// keep its predecessor's log).
#[derive(Clone)]
pub struct AccessLogSink {
    sink: Sink,
    dropped: Arc<AtomicU64>,
}

impl AccessLogSink {
    /// A sink for the configured destination; the file is opened (and created) here.
    pub fn open(target: &AccessLog) -> io::Result<AccessLogSink> {
        let writer: Box<dyn Write + Send> = match target {
            AccessLog::Off => return Ok(AccessLogSink::off()),
            AccessLog::Stdout => Box::new(io::stdout()),
            AccessLog::Stderr => Box::new(io::stderr()),
            AccessLog::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut w = io::BufWriter::new(writer);
                while let Ok(line) = rx.recv() {
                    let _ = w.write_all(line.as_bytes());
                    while let Ok(more) = rx.try_recv() {
                        let _ = w.write_all(more.as_bytes());
                    }
                    let _ = w.flush();
                }
            })?;
        Ok(AccessLogSink {
            sink: Sink::Thread(tx),
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// No access log.
    pub fn off() -> AccessLogSink {
        AccessLogSink {
            sink: Sink::Off,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A sink whose lines arrive on the returned receiver (for embedding and tests, which can
    /// await a line instead of polling a file).
    pub fn channel() -> (AccessLogSink, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            AccessLogSink {
                sink: Sink::Channel(tx),
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        !matches!(self.sink, Sink::Off)
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes the line for one exchange.
    pub fn record(&self, e: &Exchange<'_>) {
        let sent = match &self.sink {
            Sink::Off => return,
            Sink::Thread(tx) => tx.try_send(format_line(e)).is_ok(),
            Sink::Channel(tx) => tx.send(format_line(e)).is_ok(),
        };
        if !sent {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "access log writer is behind; lines dropped"
                );
            }
        }
    }
}

/// The JSON line for an exchange, newline included.
pub fn format_line(e: &Exchange<'_>) -> String {
    let req = e.request;
    let method = req.map(|r| r.head.method().as_str());
    let path = req.map(|r| String::from_utf8_lossy(r.head.path()).into_owned());
    let routing = req.and_then(|r| r.extensions.get::<Routing>());
    let route = routing.and_then(|r| r.route.as_deref());
    let upstream = routing.and_then(|r| r.upstream.as_deref());
    let caller = req.and_then(|r| r.extensions.get::<Caller>());
    // The ids of a traced request, to find its trace from its line.
    let trace = req
        .and_then(|r| r.extensions.get::<portico_telemetry::RequestSpan>())
        .filter(|s| s.sampled())
        .map(|s| s.context());
    let mut line = serde_json::json!({
        "time": rfc3339_millis(e.time),
        "request_id": e.request_id.as_str(),
        "client": e.peer.to_string(),
        "protocol": req.map(|r| r.head.version().as_str()),
        "method": method,
        "path": path,
        "status": e.status,
        "error_code": e.error.map(|c| c.as_str()),
        "route": route,
        "upstream": upstream,
        "project": caller.map(|c| &*c.project_id),
        "consumer": caller.map(|c| &*c.consumer),
        "bytes_in": e.bytes_in,
        "bytes_out": e.bytes_out,
        "duration_ms": (e.duration.as_micros() as f64) / 1000.0,
    });
    if let (Some(sc), Some(fields)) = (trace, line.as_object_mut()) {
        fields.insert("trace_id".into(), sc.trace_id().to_string().into());
        fields.insert("span_id".into(), sc.span_id().to_string().into());
    }
    let mut s = line.to_string();
    s.push('\n');
    s
}

/// `2026-11-25T14:25:39.123Z`
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) =
        portico_http::civil::civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_617_939_123);
        assert_eq!(rfc3339_millis(t), "2026-11-25T14:45:39.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }
}
