//! What `--version` and the `build` metric report: the crate version and the git commit the
//! build script recorded (`build.rs`; `unknown` from a tarball built without
//! `PASSKEY_GATEWAY_COMMIT`).

/// The commit this binary was built from.
pub const COMMIT: &str = env!("PASSKEY_GATEWAY_COMMIT");

/// `0.1.0 (commit abc123def456)`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PASSKEY_GATEWAY_COMMIT"),
    ")"
);
