//! Request policy as pure functions: the normalized path that routing and access rules see, the
//! access decision for a route, where a login may send the browser back to, and whether a
//! request is a page navigation.
//!
//! Owns: these decisions and their edge cases. Does not own: route tables or config parsing,
//! sessions, or turning a [`Decision`] into a 302/401/403 response (the proxy glue does that);
//! nothing here sees a pingora type, so every rule is tested without sockets.

mod access;
pub(crate) mod client_headers;
mod host;
mod path;
mod request_kind;
mod request_line;
mod return_to;
mod target;
mod username;

pub use access::{decide, Access, AccessRule, Decision, Requester};
pub use client_headers::{is_dropped_client_header, DROPPED_CLIENT_HEADERS};
pub use host::{canonical_host, request_host, HostError, RequestHost};
pub use path::{is_under, normalize_path, PathError};
pub use request_kind::wants_html;
pub use request_line::{check_request_line, LineError, RequestLine};
pub use return_to::safe_return_to;
pub use target::{parse_target, RequestTarget, TargetError};
pub use username::{BadUsername, Username};
