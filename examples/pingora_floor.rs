//! The floor under the gateway's proxy path: a pingora 0.9 reverse proxy that does nothing but
//! pick the upstream (no routing, policy, header work or logging), with the same `ServerConf`
//! the gateway uses (threads, work stealing). Used by the profile in BENCHMARKS.md to tell what
//! pingora itself costs per request from what the gateway adds. Allocator: the system's (glibc);
//! `pingora_floor_mimalloc` is the same with the gateway's.
//!
//! `pingora_floor LISTEN UPSTREAM [THREADS] [work-stealing|no-work-stealing]` (and the
//! environment knobs in `support/floor.rs`)

#[path = "support/floor.rs"]
mod floor;

fn main() {
    floor::run();
}
