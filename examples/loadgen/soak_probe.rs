//! What a soak sample measures: the proxied requests of one window (counts and latency
//! quantiles, in an HDR histogram) and the gateway process seen from outside (RSS and open file
//! descriptors from /proc, the store file's size).

use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The proxied requests answered since the last sample.
pub struct Window {
    latency_us: Histogram<u64>,
    authenticated: u64,
    public: u64,
    pub errors: u64,
}

impl Window {
    pub fn new() -> Window {
        Window {
            // 1 µs to 60 s at 3 significant digits: a latency is never clipped below a minute.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            authenticated: 0,
            public: 0,
            errors: 0,
        }
    }

    pub fn record(&mut self, authenticated: bool, micros: u64) {
        self.latency_us.saturating_record(micros.max(1));
        if authenticated {
            self.authenticated += 1;
        } else {
            self.public += 1;
        }
    }

    pub fn to_json(&self) -> Value {
        let h = &self.latency_us;
        let ms = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        json!({
            "authenticated": self.authenticated,
            "public": self.public,
            "errors": self.errors,
            "p50_ms": ms(0.50),
            "p99_ms": ms(0.99),
            "max_ms": ms(1.0),
        })
    }
}

/// Reads the gateway process's footprint.
pub struct Probe {
    pid: u32,
    store: PathBuf,
}

impl Probe {
    pub fn new(pid: u32, store: PathBuf) -> Probe {
        Probe { pid, store }
    }

    /// `rss_kib`, `fds` (of which `socket_fds` are sockets) and `store_bytes`; a value that
    /// cannot be read is null (the report counts that as a failure: the process is gone).
    pub fn read(&self) -> Value {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok();
        let rss_kib = status.as_deref().and_then(vm_rss_kib);
        let fds = self.fd_targets();
        let socket_fds = fds
            .as_ref()
            .map(|targets| targets.iter().filter(|t| t.starts_with("socket:")).count());
        let store_bytes = std::fs::metadata(&self.store).ok().map(|m| m.len());
        json!({
            "rss_kib": rss_kib,
            "fds": fds.map(|targets| targets.len()),
            "socket_fds": socket_fds,
            "store_bytes": store_bytes,
        })
    }

    /// What each open descriptor points to (`socket:[…]`, a path, `anon_inode:…`). Sockets
    /// come and go with connections; the rest should not move at all under a steady load.
    fn fd_targets(&self) -> Option<Vec<String>> {
        let dir = std::fs::read_dir(format!("/proc/{}/fd", self.pid)).ok()?;
        Some(
            dir.filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .map(|target| target.to_string_lossy().into_owned())
                .collect(),
        )
    }
}

/// `VmRSS:   12345 kB` of /proc/PID/status.
fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
