//! The shipped file parses; each broken file fails with the whole expected message.

use std::path::Path;

use super::*;

const BASE: &str = r#"
public_url = "http://localhost:8080"
[webauthn]
rp_id = "localhost"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(Path::new("g.toml"), text)
}

#[test]
fn shipped_gateway_toml_is_valid_and_complete() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let config = Config::load(&path).expect("the shipped gateway.toml loads");
    assert_eq!(config.webauthn.challenge_timeout.as_secs(), 300);
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].audience, "app");
    // Every key is written out with its default: the whole parsed file equals a file that
    // writes only the required keys (the route's required keys included).
    let mut minimal = load(&format!(
        "{BASE}[[route]]\nname = \"app\"\nupstream = \"http://127.0.0.1:3000\"\n"
    ))
    .expect("minimal config");
    minimal.source.clone_from(&config.source);
    let (defaults, shipped) = (format!("{minimal:#?}"), format!("{config:#?}"));
    for (default, written) in defaults.lines().zip(shipped.lines()) {
        assert_eq!(
            written, default,
            "gateway.toml writes a value that is not the default"
        );
    }
    assert_eq!(defaults.lines().count(), shipped.lines().count());
}

/// Each `Default: X` the shipped file documents is the value it writes for that key.
#[test]
fn shipped_gateway_toml_documents_the_defaults_it_writes() {
    let text = include_str!("../../gateway.toml");
    let mut documented: Option<String> = None;
    let mut undocumented = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((_, rest)) = comment.split_once("Default: ") {
                // `Default: 60.`, `Default: [] (none).`, `Default: "5s".`
                let value = rest.split(" (").next().unwrap_or(rest);
                documented = Some(value.trim_end_matches('.').to_string());
            }
            continue;
        }
        let Some((key, written)) = line.split_once(" = ") else {
            documented = None;
            continue;
        };
        if let Some(default) = &documented {
            let default = match default.as_str() {
                "the route name" => "\"app\"".to_string(),
                other => other.to_string(),
            };
            assert_eq!(
                written, default,
                "`{key}` is written as {written}, documented {default}"
            );
        } else {
            undocumented.push(key);
        }
        // `allow_users` and `allow_groups` share one comment; any other key has its own.
        if key != "allow_users" {
            documented = None;
        }
    }
    // Only the required keys have no default.
    assert_eq!(undocumented, ["public_url", "rp_id", "name", "upstream"]);
}

#[test]
fn durations_are_human() {
    let c = load(&format!(
        "{BASE}challenge_timeout = \"90s\"\n[session]\nidle_timeout = \"15m\"\nabsolute_timeout = \"7d\"\n[enrollment]\ntoken_ttl = \"12h\"\n"
    ))
    .expect("valid");
    assert_eq!(c.webauthn.challenge_timeout.as_secs(), 90);
    assert_eq!(c.session.idle_timeout.as_secs(), 900);
    assert_eq!(c.session.absolute_timeout.as_secs(), 7 * 86400);
    assert_eq!(c.enrollment.token_ttl.as_secs(), 12 * 3600);
}

#[test]
fn broken_files_name_the_key_and_the_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "public_url = \"http://localhost:8080\"\n[webauthn]\nrp_id = \"localhost\"\nrp_nmae = \"x\"\n",
            "g.toml:4:1: `webauthn.rp_nmae`: unknown field `rp_nmae`, expected one of `rp_id`, `rp_name`, `origins`, `related_origins`, `challenge_timeout`, `max_passkeys_per_user`, `max_live_ceremonies`",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[webauthn]\nrp_id = \"localhost\"\nchallenge_timeout = \"soon\"\n",
            "g.toml:4:21: `webauthn.challenge_timeout`: invalid value: string \"soon\", expected a duration",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[server]\nlisten = [\"nowhere\"]\n[webauthn]\nrp_id = \"localhost\"\n",
            "g.toml:3:11: `server.listen[0]`: invalid socket address syntax",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[webauthn]\n",
            "g.toml:2:1: `webauthn`: missing field `rp_id`",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[session]\ncache_size = 0\n[webauthn]\nrp_id = \"localhost\"\n",
            "g.toml: `session.cache_size`: must be at least 1",
        ),
        (
            "public_url = \"https://app.example.com\"\n[webauthn]\nrp_id = \"example.com\"\n",
            "g.toml: `public_url`: `https://app.example.com` is https but nothing terminates TLS: set `server.tls` or list the TLS proxy in `server.trusted_proxies`",
        ),
        (
            "public_url = \"http://app.example.com\"\n[webauthn]\nrp_id = \"example.com\"\n",
            "g.toml: `public_url`: `http://app.example.com/` is http but not localhost: browsers only allow passkeys on https",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[webauthn]\nrp_id = \"example.com\"\n",
            "g.toml: `public_url`: host `localhost` is not `example.com` or under it (webauthn.rp_id)",
        ),
        (
            "public_url = \"https://example.com\"\n[server]\ntrusted_proxies = [\"10.0.0.1/32\"]\n[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://example.com\", \"https://evil.com\"]\n",
            "g.toml: `webauthn.origins[1]`: host `evil.com` is not `example.com` or under it",
        ),
        (
            &format!("{BASE}related_origins = [\"http://shop.example.com\"]\n"),
            "g.toml: `webauthn.related_origins[0]`: must be https:// (http:// only for localhost)",
        ),
        (
            &format!("{BASE}related_origins = [\"https://a.com\", \"https://b.com\", \"https://c.com\", \"https://d.com\", \"https://www.d.com\", \"https://e.co.uk\", \"https://f.com\"]\n"),
            "g.toml: `webauthn.related_origins[6]`: more than five distinct registrable domain labels: browsers ignore the rest",
        ),
        (
            &format!("{BASE}[session]\nidle_timeout = \"2d\"\nabsolute_timeout = \"1d\"\n"),
            "g.toml: `session.absolute_timeout`: must not be shorter than `session.idle_timeout`",
        ),
        (
            &format!("{BASE}[identity]\nalgorithm = \"RS256\"\n"),
            "g.toml:6:13: `identity.algorithm`: unknown variant `RS256`, expected `ES256` or `EdDSA`",
        ),
        (
            &format!("{BASE}[identity]\nheaders = \"x-user\"\n"),
            "g.toml:6:11: `identity.headers`: unknown variant `x-user`, expected one of `passkey`, `remote`, `forwarded`, `none`",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\n[[route]]\nname = \"a\"\npath = \"/b\"\nupstream = \"http://127.0.0.1:1\"\n"),
            "g.toml: `route[1].name`: `a` is used by an earlier route",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\npath = \"/x/../y\"\nupstream = \"http://127.0.0.1:1\"\n"),
            "g.toml: `route[0].path`: must not contain `.` or `..` segments",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\npath = \"/passkeys/x\"\nupstream = \"http://127.0.0.1:1\"\n"),
            "g.toml: `route[0].path`: `/passkeys/` belongs to the gateway itself",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\naccess = \"public\"\nallow_users = [\"bob\"]\n"),
            "g.toml: `route[0].access`: is `public` but the route has allow_users/allow_groups: use `authenticated`",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\nupstream = \"ftp://127.0.0.1:1\"\n"),
            "g.toml: `route[0].upstream`: must be an http:// or https:// URL",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\nupstream = \"http://no-such-host.invalid:80\"\n"),
            "g.toml: `route[0].upstream`: cannot resolve `no-such-host.invalid`: failed to lookup address information: Name or service not known",
        ),
        (
            &format!("{BASE}[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\naccess = \"everyone\"\n"),
            "g.toml:8:10: `route[0].access`: unknown variant `everyone`, expected `public` or `authenticated`",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[server]\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n[webauthn]\nrp_id = \"localhost\"\n",
            "g.toml: `server.tls.cert`: cannot read `/nonexistent/cert.pem`: No such file or directory (os error 2)",
        ),
        (
            &format!("{BASE}[identity]\ntoken_ttl = \"10m\"\nkey_overlap = \"5m\"\n"),
            "g.toml: `identity.key_overlap`: must be at least `identity.token_ttl`, or tokens signed just before a rotation stop verifying",
        ),
        (
            "public_url = \"http://localhost:8080\"\n[server]\nrate_limit_ipv6_prefix = 0\n[webauthn]\nrp_id = \"localhost\"\n",
            "g.toml: `server.rate_limit_ipv6_prefix`: must be between 1 and 128",
        ),
        (
            &format!("{BASE}[audit]\nretention = \"0s\"\n"),
            "g.toml: `audit.retention`: must be longer than zero",
        ),
        (
            "public_url = \n",
            "g.toml:1:14: string values must be quoted, expected literal string",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| match load(text) {
            Ok(_) => Some(format!("accepted a broken file:\n{text}")),
            Err(e) if e.to_string() != *want => {
                Some(format!("for:\n{text}\n got: {e}\nwant: {want}"))
            }
            Err(_) => None,
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn tls_files_that_are_not_pem_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "not a certificate").expect("write");
    std::fs::write(&key, "not a key").expect("write");
    let text = format!(
        "public_url = \"http://localhost:8080\"\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n[webauthn]\nrp_id = \"localhost\"\n",
        cert.display(),
        key.display()
    );
    let e = load(&text).expect_err("garbage PEM");
    assert_eq!(
        e.to_string(),
        format!(
            "g.toml: `server.tls.cert`: `{}` holds no CERTIFICATE block",
            cert.display()
        )
    );
}

#[test]
fn self_service_durations_are_bounded_and_named() {
    let c = load(BASE).expect("defaults");
    assert_eq!(c.session.reauth_window.as_secs(), 300);
    assert_eq!(c.enrollment.self_service_ttl.as_secs(), 900);
    for (toml, message) in [
        (
            "[session]\nreauth_window = \"2h\"\n",
            "g.toml: `session.reauth_window`: must be at most 1h: it is how recent a passkey check must be",
        ),
        (
            "[session]\nreauth_window = \"0s\"\n",
            "g.toml: `session.reauth_window`: must be longer than zero",
        ),
        (
            "[enrollment]\nself_service_ttl = \"3h\"\n",
            "g.toml: `enrollment.self_service_ttl`: must be at most 1h: the link is shown on screen to be scanned at once",
        ),
    ] {
        let error = load(&format!("{BASE}{toml}")).expect_err("refused");
        assert_eq!(error.to_string(), message);
    }
}

/// A route is proxied (it has an `upstream`) or decided only for a fronting proxy, never both or
/// neither; every route `host` joins the hosts `return_to` may name.
#[test]
fn forward_auth_only_routes_have_no_upstream() {
    let cases = [
        (
            format!("{BASE}[[route]]\nname = \"a\"\n"),
            "g.toml: `route[0].upstream`: is required (or set `forward_auth_only = true` for a route only a fronting proxy asks about)",
        ),
        (
            format!("{BASE}[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\nforward_auth_only = true\n"),
            "g.toml: `route[0].upstream`: must not be set on a `forward_auth_only` route: the fronting proxy reaches the app",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(load(&text).expect_err(&text).to_string(), want);
    }
    let text = format!(
        "{BASE}[session]\nallowed_return_hosts = [\"x.example\"]\n\
         [[route]]\nname = \"a\"\nhost = \"App.Example\"\nforward_auth_only = true\n\
         [[route]]\nname = \"b\"\nhost = \"x.example\"\nupstream = \"http://127.0.0.1:1\"\n"
    );
    let config = load(&text).expect("valid");
    assert!(config.routes[0].upstream.is_none());
    assert_eq!(config.return_hosts(), ["x.example", "app.example"]);
}

#[test]
fn listen_takes_one_address_or_a_list() {
    let one = load(
        "public_url = \"http://localhost:8080\"\n[server]\nlisten = \"127.0.0.1:9000\"\n[webauthn]\nrp_id = \"localhost\"\n",
    )
    .expect("one string");
    assert_eq!(
        one.server.listen,
        vec!["127.0.0.1:9000".parse().expect("addr")]
    );
    let many = load(
        "public_url = \"http://localhost:8080\"\n[server]\nlisten = [\"127.0.0.1:9000\", \"[::1]:9001\"]\n[webauthn]\nrp_id = \"localhost\"\n",
    )
    .expect("a list");
    assert_eq!(many.server.listen.len(), 2);
    let bad = load(
        "public_url = \"http://localhost:8080\"\n[server]\nlisten = \"nowhere\"\n[webauthn]\nrp_id = \"localhost\"\n",
    )
    .expect_err("not an address");
    assert_eq!(
        bad.to_string(),
        "g.toml:3:10: `server.listen`: `nowhere` is not an address such as \"127.0.0.1:8080\""
    );
}

#[test]
fn admin_listen_may_not_share_a_port_with_listen() {
    let e = load(
        "public_url = \"http://localhost:8080\"\n[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"\n[webauthn]\nrp_id = \"localhost\"\n",
    )
    .expect_err("same port");
    assert_eq!(
        e.to_string(),
        "g.toml: `server.admin_listen`: port 8080 is also in server.listen; use another"
    );
}

#[test]
#[allow(clippy::unwrap_used)]
fn store_settings_are_checked_naming_the_key() {
    let store = |section: &str| format!("{BASE}[store]\n{section}");
    let kek = "key_encryption_key_env = \"PKGW_TEST_KEK_SET\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            store("url = \"postgres://h/db\"\n"),
            "g.toml: `store.url`: is only used with store.backend = \"postgres\"",
        ),
        (
            store("backend = \"postgres\"\n"),
            "g.toml: `store.url`: is required with store.backend = \"postgres\"",
        ),
        (
            store(&format!("backend = \"postgres\"\nurl = \"mysql://h/db\"\n{kek}")),
            "g.toml: `store.url`: must be a postgres:// or postgresql:// URL",
        ),
        (
            store(&format!("backend = \"postgres\"\nurl = \"postgres://h\"\n{kek}")),
            "g.toml: `store.url`: must name the database (postgres://host/DATABASE)",
        ),
        (
            store("backend = \"postgres\"\nurl = \"postgres://h/db\"\n"),
            "g.toml: `store.key_encryption_key_file`: is required with store.backend = \"postgres\" (or store.key_encryption_key_env): it seals the signing keys the replicas share",
        ),
        (
            store(&format!("backend = \"postgres\"\nurl = \"postgres://u:pw@h/db\"\npassword_env = \"X\"\n{kek}")),
            "g.toml: `store.url`: holds a password and store.password_env/password_file names another; keep one",
        ),
        (
            store(&format!("backend = \"postgres\"\nurl = \"postgres://h/db\"\npool_size = 0\n{kek}")),
            "g.toml: `store.pool_size`: must be between 1 and 1024",
        ),
        (
            store(&format!("backend = \"postgres\"\nurl = \"postgres://h/db\"\nstatement_timeout = \"10ms\"\n{kek}")),
            "g.toml: `store.statement_timeout`: must be at least 100ms",
        ),
        (
            store(&format!("backend = \"postgres\"\nurl = \"postgres://h/db\"\npassword_env = \"PKGW_TEST_UNSET_VARIABLE\"\n{kek}")),
            "g.toml: `store.password_env`: the environment variable `PKGW_TEST_UNSET_VARIABLE` is not set (or not UTF-8)",
        ),
        (
            store("backend = \"postgres\"\nurl = \"postgres://h/db\"\nkey_encryption_key_file = \"/nonexistent/kek\"\n"),
            "g.toml: `store.key_encryption_key_file`: cannot read `/nonexistent/kek`: No such file or directory (os error 2)",
        ),
    ];
    for (text, expected) in cases {
        let error = load(&text).map(drop).unwrap_err();
        assert_eq!(error.to_string(), expected, "for:\n{text}");
    }
}

#[test]
#[allow(clippy::unwrap_used)]
fn a_store_password_and_kek_come_from_files_and_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret-pw\n").unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, format!("{}\n", "ab".repeat(32))).unwrap();
    let text = format!(
        "{BASE}[store]\nbackend = \"postgres\"\nurl = \"postgres://pkgw@127.0.0.1/pkgw\"\npassword_file = {:?}\nkey_encryption_key_file = {:?}\n",
        password.display().to_string(),
        kek.display().to_string()
    );
    let config = load(&text).unwrap();
    assert_eq!(
        config.store.password.as_ref().map(Password::expose),
        Some("s3cret-pw")
    );
    assert!(config.store.key_encryption_key.is_some());
    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret-pw") && !printed.contains(&"ab".repeat(32)));
    let bad = dir.path().join("bad-kek");
    std::fs::write(&bad, "not hex").unwrap();
    let text = format!(
        "{BASE}[store]\nbackend = \"postgres\"\nurl = \"postgres://h/db\"\nkey_encryption_key_file = {:?}\n",
        bad.display().to_string()
    );
    assert_eq!(
        load(&text).map(drop).unwrap_err().to_string(),
        "g.toml: `store.key_encryption_key_file`: must be 64 hex digits (32 bytes; `openssl rand -hex 32`)"
    );
}
