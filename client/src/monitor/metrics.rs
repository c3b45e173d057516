//! `sigil log monitor --metrics-listen`: the monitor's progress in Prometheus text format, so
//! the alerting that watches the services can watch the monitor too (a monitor that stopped
//! scanning is as bad as a log that misbehaves).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// What the monitor has done since it started.
#[derive(Debug, Default)]
pub struct MonitorMetrics {
    pub entries_read: u64,
    pub tree_size: u64,
    pub scans_ok: u64,
    pub scans_failed: u64,
    pub last_success_unix: u64,
    pub findings: BTreeMap<&'static str, u64>,
}

impl MonitorMetrics {
    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "sigil_monitor_entries_read_total",
            "counter",
            "Log entries read and checked against a signed tree.",
            vec![(String::new(), self.entries_read)],
        );
        metric(
            "sigil_monitor_tree_size",
            "gauge",
            "Size of the last checkpoint verified.",
            vec![(String::new(), self.tree_size)],
        );
        metric(
            "sigil_monitor_scans_total",
            "counter",
            "Scans by outcome (failed: the log failed a check or could not be read).",
            vec![
                ("{outcome=\"ok\"}".into(), self.scans_ok),
                ("{outcome=\"failed\"}".into(), self.scans_failed),
            ],
        );
        metric(
            "sigil_monitor_last_success_timestamp_seconds",
            "gauge",
            "When the last scan succeeded (Unix seconds).",
            vec![(String::new(), self.last_success_unix)],
        );
        metric(
            "sigil_monitor_findings_total",
            "counter",
            "Findings reported, by rule.",
            self.findings
                .iter()
                .map(|(rule, n)| (format!("{{rule=\"{rule}\"}}"), *n))
                .collect(),
        );
        out
    }
}

/// Serves `GET /metrics` from `metrics` on `addr` in a background thread; returns the bound
/// address (for port 0).
pub fn serve(addr: SocketAddr, metrics: Arc<Mutex<MonitorMetrics>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut request_line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Read the rest of the head: closing with unread input would reset the connection
            // under the answer.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or_default();
            let (status, body) = if path == "/metrics" {
                let text = metrics.lock().unwrap_or_else(|p| p.into_inner()).render();
                ("200 OK", text)
            } else {
                (
                    "404 Not Found",
                    "only /metrics is served here\n".to_string(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(bound)
}
