//! The real binary as a child process, for tests that kill it with SIGKILL (crash safety, a
//! replica dying under load).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real binary serving `config`; killed with SIGKILL when dropped (a failing test leaves no
/// gateway behind).
pub struct Running(Child);

impl Running {
    /// Starts it and waits (bounded) until it answers its health check.
    pub async fn start(config: &Path, addr: SocketAddr) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway binary");
        let running = Running(child);
        wait_healthy(addr).await;
        running
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill_9(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bounded wait until the process at `addr` answers its health check.
async fn wait_healthy(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = super::client();
    loop {
        let ok = client
            .get(format!("http://localhost:{}/passkeys/health", addr.port()))
            .send()
            .await;
        if ok.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway did not come back");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback address that was free a moment ago (the binary cannot report a port-0 bind).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}
