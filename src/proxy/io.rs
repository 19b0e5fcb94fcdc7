//! The two places that touch pingora's `Session` for the gateway's own endpoints: reading a
//! request (with a body limit) and writing a [`Reply`].

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::error::ApiError;
use crate::reply::{Reply, Request};

/// Reads the request body up to `limit` bytes; larger bodies are refused without reading them all.
pub async fn read_body(session: &mut Session, limit: usize) -> Result<Result<Bytes, ApiError>> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(Err(ApiError::PayloadTooLarge));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(Err(ApiError::PayloadTooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body.freeze()))
}

/// Builds a [`Request`] from the session's header and an already-read body.
pub fn request(
    session: &Session,
    path: String,
    body: Bytes,
    client_ip: Option<std::net::IpAddr>,
) -> Request {
    let header = session.req_header();
    Request {
        method: header.method.clone(),
        path,
        headers: header.headers.clone(),
        body,
        client_ip,
    }
}

/// HSTS for the gateway's own replies over https: a year, this host only (the gateway cannot
/// know that every subdomain serves https).
const HSTS: &str = "max-age=31536000";

/// Writes a whole reply. Every local reply says `nosniff`; over https (`https`: as the client
/// saw it, see `forwarded.rs`) it also says `Strict-Transport-Security`.
pub async fn write_reply(session: &mut Session, reply: Reply, https: bool) -> Result<()> {
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (name, value) in reply.headers {
        header.append_header(name, value)?;
    }
    header.insert_header("x-content-type-options", "nosniff")?;
    if https {
        header.insert_header("strict-transport-security", HSTS)?;
    }
    header.insert_header("content-length", reply.body.len().to_string())?;
    let head_only = session.req_header().method == http::Method::HEAD || reply.body.is_empty();
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}
