//! Durability claims rest on a killed process, not on a clean close (which flushes what a crash
//! would lose). A test re-runs itself, this very test binary filtered to its own name, as a child
//! that writes, prints what was acknowledged, and waits to be killed with SIGKILL; the parent then
//! opens the store file and checks what survived.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set in the child: the directory its store lives in.
const CHILD_DIR: &str = "PASSKEY_GATEWAY_TEST_CRASH_CHILD_DIR";
/// What the child prints before each acknowledged item (libtest may have begun the line with
/// `test NAME ... `, so it is looked for anywhere in a line).
const ACK: &str = "CRASH-CHILD-ACK ";
/// What the child prints once everything is acknowledged.
const KILL_ME: &str = "CRASH-CHILD-KILL-ME";

/// In the child, the directory to write in; `None` in the parent.
pub(crate) fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR).map(PathBuf::from)
}

/// In the child: reports one acknowledged item.
pub(crate) fn acknowledge(item: impl std::fmt::Display) {
    println!("{ACK}{item}");
}

/// In the child: everything is acknowledged; blocks until killed.
pub(crate) fn wait_to_be_killed() -> ! {
    println!("{KILL_ME}");
    loop {
        std::thread::park();
    }
}

/// In the parent: runs the test `test` (its path inside the crate, e.g.
/// `store::tests::durability::x`) as a child writing in `dir`, kills it with SIGKILL once it has
/// acknowledged everything, and returns what it acknowledged.
pub(crate) fn run_and_kill(test: &str, dir: &Path) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("piped");
    let mut acknowledged = Vec::new();
    let mut killed = false;
    // Bounded: the child's stdout ends when it exits, whatever happens.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some((_, item)) = line.split_once(ACK) {
            acknowledged.push(item.to_string());
        } else if line.contains(KILL_ME) {
            child.kill().expect("SIGKILL");
            killed = true;
            break;
        }
    }
    let status = child.wait().expect("reaped");
    if !killed {
        let mut stderr = String::new();
        let _ =
            std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr);
        panic!("the child ended ({status}) before it was killed: {stderr}");
    }
    // Killed by the signal, not exited: nothing was flushed on the way out.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the child was SIGKILLed");
    acknowledged
}

/// The name libtest knows a test in `module` (from `module_path!()`) by.
pub(crate) fn test_name(module: &str, function: &str) -> String {
    let inside = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{inside}::{function}")
}
