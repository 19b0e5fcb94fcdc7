//! `passkey-gateway demo`: a newcomer's first command. It runs the real gateway on
//! `http://localhost:{port}` in front of a built-in "whoami" app ([`whoami`]) that shows the
//! identity it received and whether the assertion verified against the gateway's JWKS
//! ([`verify`]), creates the user `demo`, and prints a one-time enrollment link for it.
//!
//! The config is generated as TOML and goes through [`Config::from_toml`], so the demo is checked
//! exactly like a hand-written `gateway.toml`. This module does not own the gateway, the pages or
//! the CLI parsing; it only wires them together and keeps its data in its own directory.

pub mod verify;
pub mod whoami;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use pingora::server::RunArgs;
use tokio::net::TcpListener;

use crate::cli::DemoArgs;
use crate::config::{Config, LogFormat};
use crate::gateway::Gateway;
use crate::passkey::issue_enrollment;
use crate::store::NewUser;

pub use verify::{Trust, Verification};
pub use whoami::serve;

/// The demo user's name.
pub const DEMO_USER: &str = "demo";
/// The demo route's name, hence the audience the whoami app pins.
pub const DEMO_AUDIENCE: &str = "whoami";

/// Runs the demo until SIGINT/SIGTERM; blocks the calling thread.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _log = crate::logging::init(LogFormat::Text);
    // The whoami app runs on its own small runtime; pingora brings its own for the gateway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo-app")
        .enable_all()
        .build()
        .context("cannot start the demo app's runtime")?;
    let app_listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .context("cannot bind the demo app to 127.0.0.1")?;
    let app_addr = app_listener.local_addr()?;

    let toml = config_toml(args.port, &args.data_dir, app_addr);
    let config = Config::from_toml(Path::new("<demo>"), &toml)?;
    let gw = Gateway::new(config).context("cannot start the gateway")?;
    let trust = Trust {
        gateway: SocketAddr::from(([127, 0, 0, 1], args.port)),
        issuer: gw.config().public_origin(),
        audience: DEMO_AUDIENCE.to_string(),
    };
    // Binds every listener once, so a port in use is reported before anything is written.
    let server = crate::server::build_server(gw.clone())
        .with_context(|| format!("cannot run the demo on port {} (try --port)", args.port))?;
    let invite = runtime.block_on(invite_demo_user(&gw))?;
    runtime.spawn(serve(app_listener, trust));
    tracing::info!(app = %app_addr, gateway = %gw.config().public_origin(), "demo starting");

    println!(
        "{}",
        banner(&gw.config().public_origin(), &invite, &args.data_dir)
    );
    server.run(RunArgs::default());
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The demo's `gateway.toml`: one authenticated route `/` to the whoami app at `app`.
pub fn config_toml(port: u16, data_dir: &Path, app: SocketAddr) -> String {
    // A TOML string literal, quoted and escaped by the toml crate (paths may hold anything).
    let data_dir = toml::Value::String(data_dir.display().to_string());
    format!(
        r#"public_url = "http://localhost:{port}"

[server]
listen = ["127.0.0.1:{port}"]
data_dir = {data_dir}

[webauthn]
rp_id = "localhost"
rp_name = "passkey-gateway demo"

[[route]]
name = "{DEMO_AUDIENCE}"
path = "/"
upstream = "http://{app}"
access = "authenticated"
"#
    )
}

/// What the demo prints: a fresh enrollment link, and how many passkeys `demo` already has.
#[derive(Debug)]
pub struct Invite {
    pub link: String,
    pub passkeys: usize,
    pub valid_for: Duration,
}

/// Creates the user `demo` if absent and a new one-time enrollment link for it.
pub async fn invite_demo_user(gw: &Gateway) -> anyhow::Result<Invite> {
    let user = match gw.store().user_by_name(DEMO_USER).await? {
        Some(user) => user,
        None => {
            gw.store()
                .create_user(NewUser {
                    username: DEMO_USER.to_string(),
                    display_name: "Demo User".to_string(),
                    email: Some("demo@example.com".to_string()),
                    groups: vec!["demo".to_string()],
                })
                .await?
        }
    };
    if user.disabled {
        bail!(
            "user \"{DEMO_USER}\" is disabled in {}; enable it or use another --data-dir",
            gw.config().server.data_dir.display()
        );
    }
    let passkeys = gw.store().passkeys_of(user.id).await?.len();
    let valid_for = gw.config().enrollment.token_ttl;
    let link = issue_enrollment(gw.store(), user.id, valid_for, gw.now()).await?;
    Ok(Invite {
        link: link.url(&gw.config().public_origin()),
        passkeys,
        valid_for,
    })
}

/// The lines a newcomer reads first.
fn banner(origin: &str, invite: &Invite, data_dir: &Path) -> String {
    let valid = match invite.valid_for.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ => humantime::format_duration(invite.valid_for).to_string(),
    };
    let mut text = format!(
        "\npasskey-gateway demo: the gateway is on {origin}/ in front of a \"whoami\" app.\n\n\
         Open this link to register a passkey for user \"{DEMO_USER}\":\n\n    {link}\n\n\
         Then visit {origin}/\n",
        link = invite.link,
    );
    if invite.passkeys > 0 {
        let noun = if invite.passkeys == 1 {
            "passkey"
        } else {
            "passkeys"
        };
        text.push_str(&format!(
            "or sign in at {origin}/passkeys/login (user \"{DEMO_USER}\" already has {} {noun}).\n",
            invite.passkeys
        ));
    }
    text.push_str(&format!(
        "\nThe link works once, for {valid}. Data lives in {}. Ctrl-C stops the demo.\n",
        data_dir.display()
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_passes_the_checks_of_a_written_one() {
        let toml = config_toml(
            8080,
            Path::new("./demo \"data\""),
            "127.0.0.1:4321".parse().expect("addr"),
        );
        let config =
            Config::from_toml(Path::new("<demo>"), &toml).expect("the demo config is valid");
        assert_eq!(config.public_origin(), "http://localhost:8080");
        assert_eq!(config.server.data_dir, Path::new("./demo \"data\""));
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.routes[0].audience, DEMO_AUDIENCE);
    }

    #[test]
    fn the_banner_names_the_link_and_the_app() {
        let invite = Invite {
            link: "http://localhost:8080/passkeys/enroll#token=abc".into(),
            passkeys: 0,
            valid_for: Duration::from_secs(24 * 3600),
        };
        let text = banner("http://localhost:8080", &invite, Path::new("./demo-data"));
        assert!(text.contains(
            "Open this link to register a passkey for user \"demo\":\n\n    http://localhost:8080/passkeys/enroll#token=abc\n\nThen visit http://localhost:8080/\n"
        ), "{text}");
        assert!(!text.contains("or sign in"), "{text}");
        let again = Invite {
            passkeys: 2,
            ..invite
        };
        let text = banner("http://localhost:8080", &again, Path::new("./demo-data"));
        assert!(
            text.contains("or sign in at http://localhost:8080/passkeys/login"),
            "{text}"
        );
    }
}
