//! The binary's `check` command on the shipped file and on a broken one.

use std::process::Command;

fn check(config: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(config)
        .arg("check")
        .output()
        .expect("run the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_passes_on_the_shipped_file() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let (ok, stdout, stderr) = check(&shipped);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("gateway.toml: ok"), "{stdout}");
    assert!(stdout.contains("rp_id       localhost"), "{stdout}");
}

#[test]
fn check_fails_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.toml");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml"),
    )
    .expect("read");
    std::fs::write(
        &broken,
        shipped.replace(
            "max_passkeys_per_user = 10",
            "max_passkeys_per_user = \"many\"",
        ),
    )
    .expect("write");
    let line = shipped
        .lines()
        .position(|l| l.starts_with("max_passkeys_per_user"))
        .expect("key")
        + 1;
    let (ok, _, stderr) = check(&broken);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: {}:{line}:25: `webauthn.max_passkeys_per_user`: invalid type: string \"many\", expected usize",
            broken.display()
        )
    );
}
