//! The one place errors become HTTP statuses and JSON bodies, for the gateway's own endpoints
//! and for the proxy's own replies (401, 403, 404, 502, 503) alike.
//!
//! Domain modules return their own errors ([`PasskeyError`], [`StoreError`], ...) with their
//! causes as sources; they become an [`ApiError`] here, and an `ApiError` becomes a [`Reply`]
//! in [`ApiError::into_reply`]. Client errors carry a fixed code and a sentence a person can act
//! on; they are logged at debug. Server errors get a generic body and their cause chain is logged
//! at warn, never sent to the client. No message says whether a user or a credential exists.

use std::error::Error as StdError;

use http::StatusCode;

use crate::passkey::{BadPasskeyName, PasskeyError};
use crate::policy::BadUsername;
use crate::reply::Reply;
use crate::store::StoreError;

/// A cause kept for the log.
type Cause = Box<dyn StdError + Send + Sync>;

/// Everything the gateway answers with, other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(&'static str, &'static str),
    #[error("not signed in")]
    Unauthorized,
    /// No session on a proxied request that is not a page navigation: 401 naming the login page.
    #[error("not signed in")]
    LoginRequired { login_url: String },
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
    /// The health check's store read failed.
    #[error("the store does not answer")]
    StoreUnavailable(#[source] StoreError),
    /// The upstream did not answer (502) or not in time (504).
    #[error("the upstream did not answer ({0})")]
    BadGateway(StatusCode),
    /// A request the proxy cannot forward as it stands (pingora refused it downstream).
    #[error("the request cannot be forwarded ({0})")]
    NotForwardable(StatusCode),
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl ApiError {
    /// A server-side failure; `cause` is logged, never shown.
    pub fn internal(cause: impl Into<Cause>) -> ApiError {
        ApiError::Internal(cause.into())
    }

    /// The reply for a request the proxy could not forward, by the status it decided on: an
    /// upstream failure (502/504), a request it refused (other 4xx), or its own failure (5xx).
    pub fn proxy_failure(status: StatusCode, cause: impl Into<Cause>) -> ApiError {
        match status {
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => ApiError::BadGateway(status),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            s if s.is_client_error() => ApiError::NotForwardable(s),
            _ => ApiError::internal(cause),
        }
    }

    /// Status, machine code and human message.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest(code, msg) => (StatusCode::BAD_REQUEST, code, msg),
            ApiError::Unauthorized | ApiError::LoginRequired { .. } => (
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
            ApiError::StoreUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The gateway's store is not answering.",
            ),
            ApiError::BadGateway(status) => (
                *status,
                "bad_gateway",
                "The application behind this address is not answering. Try again shortly.",
            ),
            ApiError::NotForwardable(status) => (
                *status,
                "bad_request",
                "This request cannot be forwarded as it stands.",
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
            tracing::warn!(error = %chain(&self), "request failed");
        } else {
            tracing::debug!(error = %chain(&self), "request refused");
        }
        let mut body = serde_json::json!({"error": code, "message": message});
        if let ApiError::LoginRequired { login_url } = &self {
            body["login_url"] = login_url.as_str().into();
        }
        let mut reply = Reply::json(status, &body);
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Unavailable { retry_after_secs } = self
        {
            reply = reply.header("retry-after", retry_after_secs.to_string());
        }
        reply
    }
}

/// An error and its sources, `outer: inner: innermost`, for the log.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> ApiError {
        match e {
            PasskeyError::CeremonyGone => ApiError::BadRequest(
                "ceremony_expired",
                "This sign-in attempt expired or was already used. Start again.",
            ),
            PasskeyError::NotSignedIn => ApiError::Unauthorized,
            // The one answer for every failed login: never whether the user or the key was wrong.
            PasskeyError::LoginFailed => ApiError::BadRequest(
                "login_failed",
                "That passkey could not sign you in. Try again or use another passkey.",
            ),
            // Same words; the code lets the page signal the browser (`signalUnknownCredential`).
            PasskeyError::UnknownCredential => ApiError::BadRequest(
                "unknown_credential",
                "That passkey could not sign you in. Try again or use another passkey.",
            ),
            PasskeyError::RegistrationFailed(_) => ApiError::BadRequest(
                "registration_failed",
                "The passkey could not be registered. Try again.",
            ),
            PasskeyError::CredentialExists => ApiError::Conflict(
                "credential_exists",
                "This passkey is already registered. Use it to sign in, or create a new one.",
            ),
            PasskeyError::TooManyPasskeys => ApiError::Conflict(
                "too_many_passkeys",
                "You have the most passkeys allowed. Delete one before adding another.",
            ),
            PasskeyError::UserDisabled => ApiError::Forbidden(
                "user_disabled",
                "This account is disabled. Contact your administrator.",
            ),
            PasskeyError::EnrollmentInvalid => ApiError::BadRequest(
                "enrollment_invalid",
                "This enrollment link has expired or was already used. Ask your administrator for a new one.",
            ),
            PasskeyError::Busy => ApiError::Unavailable {
                // Expired ceremonies are purged by the next upkeep.
                retry_after_secs: crate::gateway::UPKEEP_INTERVAL.as_secs(),
            },
            PasskeyError::Store(e @ StoreError::Storage(_)) => ApiError::StoreUnavailable(e),
            e @ (PasskeyError::WebAuthn(_)
            | PasskeyError::Serialization(_)
            | PasskeyError::Store(_)) => ApiError::internal(e),
        }
    }
}

impl From<BadPasskeyName> for ApiError {
    fn from(_: BadPasskeyName) -> ApiError {
        ApiError::BadRequest(
            "bad_name",
            "A passkey name is at most 64 characters, without control characters.",
        )
    }
}

impl From<BadUsername> for ApiError {
    fn from(_: BadUsername) -> ApiError {
        ApiError::BadRequest(
            "bad_username",
            "A username is 1 to 64 letters, digits, `.`, `_` or `-`.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // The backend itself failed (PostgreSQL down, a timeout): 503, retry later.
        if matches!(e, StoreError::Storage(_)) {
            return ApiError::StoreUnavailable(e);
        }
        ApiError::internal(e)
    }
}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_failure_becomes_the_matching_json_error() {
        let cases = [
            (StatusCode::BAD_GATEWAY, "bad_gateway"),
            (StatusCode::GATEWAY_TIMEOUT, "bad_gateway"),
            (StatusCode::BAD_REQUEST, "bad_request"),
            (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "bad_request"),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            (StatusCode::SERVICE_UNAVAILABLE, "internal_error"),
        ];
        for (status, code) in cases {
            let (got_status, got_code, _) = ApiError::proxy_failure(status, "cause").parts();
            assert_eq!(got_code, code, "{status}");
            let want = if code == "internal_error" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                status
            };
            assert_eq!(got_status, want, "{status}");
        }
    }
}
