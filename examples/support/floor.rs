//! The floor proxy shared by `pingora_floor` and `pingora_floor_mimalloc`: a pingora 0.9 reverse
//! proxy that does nothing but pick the upstream (no routing, policy, header work or logging),
//! with the same `ServerConf` the gateway uses (threads, work stealing).
//!
//! Arguments: `LISTEN UPSTREAM [THREADS] [work-stealing|no-work-stealing]`. pingora's other
//! knobs, for `bench/instructions.sh`'s `FLOOR_VARIANTS`, come from the environment:
//! `FLOOR_POOL` (`upstream_keepalive_pool_size`), `FLOOR_KEEPALIVE` (downstream keep-alive
//! seconds; 0 closes after each request), `FLOOR_UPSTREAM_IDLE` (the upstream connection's idle
//! timeout in seconds, `HttpPeer::options.idle_timeout`), `FLOOR_RECV_BUF` (the upstream socket's
//! receive buffer, `HttpPeer::options.tcp_recv_buf`), `FLOOR_ALT_TIMER=1`
//! (`runtime_enable_alt_timer`).

use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

struct Floor {
    upstream: std::net::SocketAddr,
    keepalive: Option<u64>,
    upstream_idle: Option<Duration>,
    recv_buf: Option<usize>,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if let Some(seconds) = self.keepalive {
            session.set_keepalive((seconds > 0).then_some(seconds));
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if let Some(idle) = self.upstream_idle {
            peer.options.idle_timeout = Some(idle);
        }
        peer.options.tcp_recv_buf = self.recv_buf;
        Ok(Box::new(peer))
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
}

pub fn run() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("LISTEN address");
    let upstream = args
        .next()
        .expect("UPSTREAM address")
        .parse()
        .expect("UPSTREAM is ip:port");
    let threads = args.next().map_or(2, |t| t.parse().expect("THREADS"));
    let work_stealing = args.next().as_deref() != Some("no-work-stealing");
    let mut conf = ServerConf {
        threads,
        work_stealing,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    conf.runtime_enable_alt_timer = env_number("FLOOR_ALT_TIMER") == Some(1);
    if let Some(pool) = env_number("FLOOR_POOL") {
        conf.upstream_keepalive_pool_size = usize::try_from(pool).expect("pool size");
    }
    let floor = Floor {
        upstream,
        keepalive: env_number("FLOOR_KEEPALIVE"),
        upstream_idle: env_number("FLOOR_UPSTREAM_IDLE").map(Duration::from_secs),
        recv_buf: env_number("FLOOR_RECV_BUF").map(|b| usize::try_from(b).expect("buffer size")),
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, floor);
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
