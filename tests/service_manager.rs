//! The real binary under a stand-in for systemd: `NOTIFY_SOCKET` names a datagram socket the
//! test bound. `READY=1` arrives once the port accepts; SIGHUP reloads (`RELOADING=1`, then
//! `READY=1`) and applies a new route; SIGTERM sends `STOPPING=1`. Also `--version`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::net::UnixDatagram;

use crate::support::{client, config, EchoUpstream};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The next notification, within a deadline.
async fn next(socket: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buf))
        .await
        .expect("a notification within the deadline")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn write_config(path: &std::path::Path, port: u16, data: &std::path::Path, routes: &str) {
    let text = config(&format!("listen = \"127.0.0.1:{port}\""), routes)
        .replace("{port}", &port.to_string())
        .replace("{data_dir}", &data.display().to_string());
    std::fs::write(path, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_socket_gets_ready_after_the_port_accepts_then_reloading_and_stopping() {
    let echo = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    let data = dir.path().join("data");
    let config_path = dir.path().join("gateway.toml");
    let port = free_port();
    let route = |name: &str, path: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"http://{}\"\naccess = \"public\"\n",
            echo.addr
        )
    };
    write_config(&config_path, port, &data, &route("one", "/one"));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the gateway binary");
    let pid = child.id().expect("pid");

    let ready = next(&notify).await;
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means accepting: the port answers at once, with no retry.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    tokio::net::TcpStream::connect(addr)
        .await
        .expect("the port accepts once READY=1 was sent");
    let url = |path: &str| format!("http://localhost:{port}{path}");
    assert_eq!(
        client()
            .get(url("/one/x"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(url("/two/x"))
            .send()
            .await
            .expect("get")
            .status(),
        404
    );

    // SIGHUP: a reload, announced to the service manager, that applies the new route.
    write_config(
        &config_path,
        port,
        &data,
        &(route("one", "/one") + &route("two", "/two")),
    );
    signal(pid, "HUP");
    let reloading = next(&notify).await;
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    let again = next(&notify).await;
    assert!(again.lines().any(|l| l == "READY=1"), "{again:?}");
    assert_eq!(
        client()
            .get(url("/two/x"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );

    signal(pid, "TERM");
    let stopping = next(&notify).await;
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the gateway stops")
        .expect("wait");
}

#[test]
fn version_prints_the_version_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--version")
        .output()
        .expect("run the binary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!(
            "passkey-gateway {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    // In a checkout the build script finds the commit; from a tarball it says `unknown`.
    let commit = text
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap_or("");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_pinged_when_systemd_asks_for_it() {
    let echo = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    let config_path = dir.path().join("gateway.toml");
    let routes = format!(
        "[[route]]\nname = \"app\"\nupstream = \"http://{}\"\n",
        echo.addr
    );
    write_config(&config_path, free_port(), &dir.path().join("data"), &routes);
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .env("NOTIFY_SOCKET", &notify_path)
        // 200 ms: a ping every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the gateway binary");
    let mut pings = 0;
    while pings < 3 {
        if next(&notify).await.lines().any(|l| l == "WATCHDOG=1") {
            pings += 1;
        }
    }
}
