//! The admin listener (`[server] admin_listen`, off by default): `GET /metrics` (Prometheus
//! text), `GET /healthz` (the process answers) and `GET /readyz` (every readiness check, 503
//! with the failing one's reason). Plain HTTP/1.1 on its own socket, never the public listener:
//! bind it to loopback or a private network.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::gateway::Gateway;

/// Prometheus' text exposition format, version 0.0.4.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve_admin_http(listener: TcpListener, gw: Arc<Gateway>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                continue;
            }
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&gw, &req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                tracing::debug!(error = %e, "admin listener: connection ended");
            }
        });
    }
}

async fn answer(gw: &Gateway, req: &hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_string());
    }
    match req.uri().path() {
        "/metrics" => metrics(gw).await,
        "/healthz" => text(StatusCode::OK, "ok\n".to_string()),
        "/readyz" => ready(gw).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n".to_string(),
        ),
    }
}

async fn metrics(gw: &Gateway) -> Response<Full<Bytes>> {
    let pulled = gw.pulled_metrics().await;
    match gw.metrics().encode(&pulled) {
        Ok(body) => respond(StatusCode::OK, METRICS_TYPE, body),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the metrics\n".to_string(),
        ),
    }
}

/// One line per check, `name: ok|FAIL: what`; 200 when all pass, else 503.
async fn ready(gw: &Gateway) -> Response<Full<Bytes>> {
    let checks = crate::health::readiness(gw).await;
    let ready = checks.iter().all(|c| c.outcome.is_ok());
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for check in &checks {
        let line = match &check.outcome {
            Ok(what) => format!("{}: ok: {what}\n", check.name),
            Err(why) => format!("{}: FAIL: {why}\n", check.name),
        };
        body.push_str(&line);
    }
    if !ready {
        tracing::warn!(report = %body.replace('\n', "; "), "readiness check failed");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, body)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}
