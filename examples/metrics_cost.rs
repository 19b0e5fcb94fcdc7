//! What the operations work adds to every proxied request, measured in isolation: loading the
//! live config (`arc-swap`), counting the request under its route and status class, and
//! observing its duration, on two threads at once (the proxy's worker count in the benchmark),
//! so the histogram's lock is contended as it would be.
//!
//!   cargo run --release --example metrics_cost

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use passkey_gateway::metrics::Metrics;

const PER_THREAD: u32 = 2_000_000;

fn main() {
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(ArcSwap::from_pointee(vec![metrics.route("app")]));
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (metrics, live) = (metrics.clone(), live.clone());
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let current = live.load_full();
                    current[0].count(200);
                    metrics.observe_duration(Duration::from_micros(u64::from(i % 2000)));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let took = started.elapsed();
    let per_request = took.as_nanos() as f64 / f64::from(PER_THREAD);
    println!(
        "{:.0} ns of wall time per request per thread ({} requests on each of 2 threads in {:?})",
        per_request, PER_THREAD, took
    );
}
