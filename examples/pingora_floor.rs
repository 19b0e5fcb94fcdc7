//! The floor under the gateway's proxy path: a pingora 0.9 reverse proxy that does nothing but
//! pick the upstream (no routing, policy, header work or logging), with the same `ServerConf`
//! the gateway uses (threads, work stealing). Used by the profile in BENCHMARKS.md to tell what
//! pingora itself costs per request from what the gateway adds.
//!
//! `pingora_floor LISTEN UPSTREAM [THREADS] [work-stealing|no-work-stealing]`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

struct Floor {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("LISTEN address");
    let upstream = args
        .next()
        .expect("UPSTREAM address")
        .parse()
        .expect("UPSTREAM is ip:port");
    let threads = args.next().map_or(2, |t| t.parse().expect("THREADS"));
    let work_stealing = args.next().as_deref() != Some("no-work-stealing");
    let conf = ServerConf {
        threads,
        work_stealing,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Floor { upstream });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
