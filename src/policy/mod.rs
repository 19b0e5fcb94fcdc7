//! INTERIM (replaced by the policy branch at merge).
pub use crate::config::Access;

#[derive(Debug)]
pub struct PathError;

pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    let p = raw.split(['?', '#']).next().unwrap_or("/");
    Ok(if p.is_empty() {
        "/".into()
    } else {
        p.to_string()
    })
}

pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}
