use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn route_counters_count_by_status_class_under_the_route_label() {
    let metrics = Metrics::new();
    let app = metrics.route("app");
    for status in [200, 204, 302, 404, 502, 0] {
        app.count(status);
    }
    let text = metrics.encode(&Pulled::default()).expect("encodes");
    let count = |class: &str| {
        let prefix = format!("passkey_gateway_requests_total{{route=\"app\",class=\"{class}\"}} ");
        line(&text, &prefix).map(|l| l[prefix.len()..].to_string())
    };
    assert_eq!(count("2xx").as_deref(), Some("2"));
    assert_eq!(count("3xx").as_deref(), Some("1"));
    assert_eq!(count("4xx").as_deref(), Some("1"));
    assert_eq!(count("5xx").as_deref(), Some("1"));
    assert_eq!(count("none").as_deref(), Some("1"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn pulled_values_and_build_info_are_exposed() {
    let metrics = Metrics::new();
    let pulled = Pulled {
        sessions_cached: 3,
        sessions_stored: Some(5),
        revocations: 2,
        store_writes: 10,
        store_commits: 4,
        store_commit_seconds: 0.25,
    };
    let text = metrics.encode(&pulled).expect("encodes");
    assert!(
        text.contains("passkey_gateway_sessions_cached 3\n"),
        "{text}"
    );
    assert!(text.contains("passkey_gateway_sessions_stored 5\n"));
    assert!(text.contains("passkey_gateway_session_revocations_total 2\n"));
    assert!(text.contains("passkey_gateway_store_commits_total 4\n"));
    assert!(text.contains("passkey_gateway_store_commit_seconds_total 0.25\n"));
    assert!(text.contains(&format!("commit=\"{}\"", crate::version::COMMIT)));
}
