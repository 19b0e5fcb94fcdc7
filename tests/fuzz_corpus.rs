//! Every saved fuzz corpus (`fuzz/corpus/<target>/`), seeds and what the long runs kept, replayed
//! through the same property checks the libFuzzer targets assert. A crash found by fuzzing is
//! saved into its target's corpus, so it stays a regression test here.

#[path = "../fuzz/checks.rs"]
mod checks;
#[path = "../fuzz/endpoint_checks.rs"]
mod endpoint_checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        count += 1;
    }
    assert!(count > 0, "{target}: empty corpus");
}

#[test]
fn request_target_corpus() {
    replay("request_target", checks::request_target);
}

#[test]
fn host_corpus() {
    replay("host", checks::host);
}

#[test]
fn cookie_corpus() {
    replay("cookie", checks::cookie);
}

#[test]
fn forwarded_for_corpus() {
    replay("forwarded_for", checks::forwarded_for);
}

#[test]
fn return_to_corpus() {
    replay("return_to", checks::return_to);
}

#[test]
fn credential_corpus() {
    replay("credential", checks::credential);
}

#[test]
fn config_corpus() {
    replay("config", checks::config);
}

#[test]
fn ceremony_json_corpus() {
    replay("ceremony_json", endpoint_checks::ceremony_json);
}
