//! The wall clock, in the unix seconds every record and ceremony is stamped with.
//!
//! One function, so the places that read the time are easy to find (and, later, to inject).

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
