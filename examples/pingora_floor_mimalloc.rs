//! [`pingora_floor`](pingora_floor.rs) with the gateway's global allocator (mimalloc), so the
//! floor and the gateway can be compared with the same allocator: pingora_floor uses glibc's
//! malloc, whose malloc/free cost is part of what "pingora alone" measures there.
//!
//! `pingora_floor_mimalloc LISTEN UPSTREAM [THREADS] [work-stealing|no-work-stealing]`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/floor.rs"]
mod floor;

fn main() {
    floor::run();
}
