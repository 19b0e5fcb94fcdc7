//! A coarse, bounded label for the device a session signed in from ("Firefox on Android"), for
//! the person's own list of sessions. Only the label is kept, never the raw `User-Agent`: it is
//! unbounded, attacker-chosen, and more identifying than a person needs to recognise a device.
//!
//! A small ordered table is enough: the order matters because every browser's string names the
//! others (Edge says "Chrome" and "Safari", Chrome says "Safari", Android says "Linux").

use std::net::IpAddr;

use crate::store::SessionRecord;

/// Where a sign-in came from, as the owner will see it in their list of sessions.
#[derive(Debug, Clone, Default)]
pub struct SignedInFrom {
    /// The client address the gateway decided on (`proxy/forwarded.rs`).
    pub client: Option<IpAddr>,
    /// The coarse label of the request's User-Agent.
    pub device: Option<String>,
}

impl SignedInFrom {
    pub fn new(client: Option<IpAddr>, user_agent: Option<&str>) -> SignedInFrom {
        SignedInFrom {
            client,
            device: user_agent.and_then(device_label),
        }
    }

    /// Writes this onto a session just minted.
    pub fn stamp(&self, record: &mut SessionRecord) {
        record.client = self.client.map(|ip| ip.to_string());
        record.device.clone_from(&self.device);
    }
}

/// Browsers, most specific first.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Vivaldi/", "Vivaldi"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
];

/// Operating systems, most specific first.
const SYSTEMS: &[(&str, &str)] = &[
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
];

/// "Browser on System", or what part of it is known; `None` when nothing is.
pub fn device_label(user_agent: &str) -> Option<String> {
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(token, _)| user_agent.contains(token))
            .map(|(_, label)| *label)
    };
    match (find(BROWSERS), find(SYSTEMS)) {
        (Some(browser), Some(system)) => Some(format!("{browser} on {system}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_string()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::device_label;

    #[test]
    fn common_browsers_get_coarse_labels() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/132.0.0.0 Safari/537.36", "Chrome on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
            ("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0", "Firefox on Android"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"),
        ];
        for (ua, label) in cases {
            assert_eq!(device_label(ua).as_deref(), Some(label), "{ua}");
        }
        assert_eq!(device_label("curl/8.5.0"), None);
        assert_eq!(device_label(&"x".repeat(100_000)), None);
    }
}
