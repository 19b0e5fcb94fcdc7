//! The one place errors become HTTP statuses and JSON bodies.
//!
//! Client errors carry a fixed code and a sentence a person can act on; they are logged at debug.
//! Server errors get a generic body and their cause is logged at warn, never sent to the client.
//! No message says whether a user or a credential exists.

use http::StatusCode;

use crate::reply::Reply;

/// Everything the gateway's own endpoints can answer with, other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(&'static str, &'static str),
    #[error("not signed in")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(&'static str, &'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(&'static str, &'static str),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("busy")]
    Unavailable { retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Status, machine code and human message.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest(code, msg) => (StatusCode::BAD_REQUEST, code, msg),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Sign in with your passkey to continue.",
            ),
            ApiError::Forbidden(code, msg) => (StatusCode::FORBIDDEN, code, msg),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Nothing is here. Check the address.",
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This address does not accept that method.",
            ),
            ApiError::Conflict(code, msg) => (StatusCode::CONFLICT, code, msg),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the request body as application/json.",
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many attempts. Wait a moment and try again.",
            ),
            ApiError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Too many sign-ins are in progress. Try again in a moment.",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong on our side. Try again in a moment.",
            ),
        }
    }

    /// The JSON reply, logging as the module doc says.
    pub fn into_reply(self) -> Reply {
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let mut reply = Reply::json(
            status,
            &serde_json::json!({"error": code, "message": message}),
        );
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Unavailable { retry_after_secs } = self
        {
            reply = reply.header("retry-after", retry_after_secs.to_string());
        }
        reply
    }
}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
