//! `bench/report.py check`, the verdict of the benchmark smoke CI runs: a scenario that completed
//! too few operations fails it, even with no error counted.

use std::path::Path;
use std::process::Command;

/// Runs `report.py check` on `rows` (JSON lines); its exit status and stderr.
fn check(rows: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("results.jsonl");
    std::fs::write(&results, rows.join("\n")).expect("write results");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/report.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("check")
        .arg(&results)
        .output()
        .expect("python3 runs bench/report.py");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

const WRK_OK: &str = r#"{"type": "wrk", "scenario": "gw_auth", "conc": "32", "run": "1", "rps": 900.0, "requests": 912, "errors": 0}"#;
const LOGIN_OK: &str = r#"{"type": "ceremony", "kind": "login", "target_name": "gateway", "run": 1, "ok": 41, "errors": 0}"#;
const FOOTPRINT: &str = r#"{"type": "footprint", "what": "ready", "store": "empty", "run": 1, "attempts": 3, "ready_ms": 50.0}"#;

#[test]
fn scenarios_that_ran_pass() {
    assert_eq!(check(&[WRK_OK, LOGIN_OK, FOOTPRINT]), (true, String::new()));
}

#[test]
fn a_ceremony_scenario_with_no_success_and_no_error_fails() {
    let idle = r#"{"type": "ceremony", "kind": "register", "target_name": "gateway", "run": 1, "ok": 0, "errors": 0}"#;
    let (ok, stderr) = check(&[WRK_OK, idle]);
    assert!(!ok, "a scenario that did nothing passed");
    assert_eq!(
        stderr,
        format!("only 0 successful operations (at least 10 expected) in {idle}")
    );
}

#[test]
fn a_wrk_scenario_with_too_few_requests_fails() {
    let few = r#"{"type": "wrk", "scenario": "gw_public", "conc": "32", "run": "1", "rps": 3.0, "requests": 3, "errors": 0}"#;
    let (ok, stderr) = check(&[few, LOGIN_OK]);
    assert!(!ok, "a scenario that did almost nothing passed");
    assert!(
        stderr.starts_with("only 3 successful operations"),
        "{stderr}"
    );
}

#[test]
fn errors_still_fail() {
    let failing = r#"{"type": "ceremony", "kind": "login", "target_name": "gateway", "run": 1, "ok": 500, "errors": 2}"#;
    let (ok, stderr) = check(&[failing]);
    assert!(!ok);
    assert!(stderr.starts_with("error in "), "{stderr}");
}
