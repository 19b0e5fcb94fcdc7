//! Build script: records the git commit for `--version` and the `build` metric.
//!
//! From `git` when building in a checkout; from `PASSKEY_GATEWAY_COMMIT` when set (a packager
//! building from a tarball passes it); else `unknown`. Never fails the build.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PASSKEY_GATEWAY_COMMIT");
    let commit = std::env::var("PASSKEY_GATEWAY_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    // A new commit or checkout moves HEAD's log: rerun then, and only then.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rustc-env=PASSKEY_GATEWAY_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    // No "-dirty" mark: the script reruns only when HEAD moves, so it could not stay true.
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_string())
}
