//! The ceremony and account endpoints, fed JSON bodies built from a grammar (`arbitrary`): the
//! keys they read, ids of ceremonies that really are in flight, base64url blobs and WebAuthn
//! shapes, nested anyhow, plus raw bytes. Shared by the libFuzzer target `ceremony_json` and by
//! `cargo test`, which replays the saved corpus (`tests/fuzz_corpus.rs`).
//!
//! Property: whatever the body, the gateway answers; a refusal is a 4xx with a JSON `error` code,
//! and the only 5xx is 503 `busy` (the ceremony cap). A 500 means bad input reached a place that
//! treats it as the gateway's own failure.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderValue, Method};
use passkey_gateway::endpoints::{Endpoints, Reply, Request};
use passkey_gateway::{Config, Gateway};
use serde_json::{Map, Value};

/// Which endpoint gets the body.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Endpoint {
    RegisterBegin,
    RegisterComplete,
    LoginBegin,
    LoginComplete,
    Logout,
    Rename,
}

/// Keys the endpoints (and webauthn-rs's credential types) read, or any other.
#[derive(Arbitrary, Debug)]
enum Key {
    Name,
    Token,
    SessionId,
    Credential,
    Username,
    ReturnTo,
    Id,
    RawId,
    Response,
    Type,
    ClientDataJson,
    AttestationObject,
    AuthenticatorData,
    Signature,
    UserHandle,
    Extensions,
    Other(String),
}

impl Key {
    fn text(&self) -> &str {
        match self {
            Key::Name => "name",
            Key::Token => "token",
            Key::SessionId => "session_id",
            Key::Credential => "credential",
            Key::Username => "username",
            Key::ReturnTo => "return_to",
            Key::Id => "id",
            Key::RawId => "rawId",
            Key::Response => "response",
            Key::Type => "type",
            Key::ClientDataJson => "clientDataJSON",
            Key::AttestationObject => "attestationObject",
            Key::AuthenticatorData => "authenticatorData",
            Key::Signature => "signature",
            Key::UserHandle => "userHandle",
            Key::Extensions => "extensions",
            Key::Other(other) => other,
        }
    }
}

/// A string value: the interesting ones first.
#[derive(Arbitrary, Debug)]
enum Text {
    /// The id of a ceremony begun for this input (a real one, in flight).
    LiveCeremony,
    Uuid(u128),
    Base64Url(Vec<u8>),
    PublicKey,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Json(Json),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    endpoint: Endpoint,
    body: Body,
    /// Sends `Content-Type: application/json` (else none).
    json_type: bool,
    /// Sends the gateway's own `Origin` (else none).
    same_origin: bool,
    /// Sends a session cookie that no session has.
    stale_cookie: bool,
    client: u32,
}

/// Deep enough for every shape the endpoints read; deeper only costs time.
const MAX_DEPTH: usize = 8;

impl Json {
    fn value(&self, live: &str, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => Value::from(*f),
            Json::Text(text) => Value::String(text.render(live)),
            Json::Array(items) => items.iter().map(|j| j.value(live, depth + 1)).collect(),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, j)| (k.text().to_string(), j.value(live, depth + 1)))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

impl Text {
    fn render(&self, live: &str) -> String {
        use base64::Engine;
        match self {
            Text::LiveCeremony => live.to_string(),
            Text::Uuid(n) => uuid::Uuid::from_u128(*n).to_string(),
            Text::Base64Url(bytes) => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            }
            Text::PublicKey => "public-key".into(),
            Text::Any(s) => s.clone(),
        }
    }
}

/// One gateway (a redb store in a temporary directory) for the whole run, and a runtime.
struct World {
    runtime: tokio::runtime::Runtime,
    endpoints: Endpoints,
    gateway: Arc<Gateway>,
    inputs: Mutex<u64>,
    _dir: tempfile::TempDir,
}

const PUBLIC_URL: &str = "http://localhost:8080";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let text = format!(
            r#"
            public_url = "{PUBLIC_URL}"
            [server]
            listen = ["127.0.0.1:0"]
            data_dir = "{}"
            ceremony_rate_per_minute = 0
            [webauthn]
            rp_id = "localhost"
            [[route]]
            name = "app"
            upstream = "http://127.0.0.1:9"
            "#,
            dir.path().display()
        );
        let config = Config::from_toml(std::path::Path::new("fuzz.toml"), &text).expect("config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let gateway = runtime
            .block_on(async { Gateway::new(config) })
            .expect("gateway");
        World {
            endpoints: Endpoints::new(gateway.clone()),
            gateway,
            runtime,
            inputs: Mutex::new(0),
            _dir: dir,
        }
    })
}

fn request(input: &Input, live: &str) -> Request {
    let (method, path) = match input.endpoint {
        Endpoint::RegisterBegin => (Method::POST, "/passkeys/register/begin".to_string()),
        Endpoint::RegisterComplete => (Method::POST, "/passkeys/register/complete".to_string()),
        Endpoint::LoginBegin => (Method::POST, "/passkeys/login/begin".to_string()),
        Endpoint::LoginComplete => (Method::POST, "/passkeys/login/complete".to_string()),
        Endpoint::Logout => (Method::POST, "/passkeys/logout".to_string()),
        Endpoint::Rename => (Method::PATCH, format!("/passkeys/credentials/{live}")),
    };
    let mut headers = HeaderMap::new();
    if input.json_type {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    if input.same_origin {
        headers.insert("origin", HeaderValue::from_static(PUBLIC_URL));
    }
    if input.stale_cookie {
        headers.insert(
            "cookie",
            HeaderValue::from_static("passkey_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        );
    }
    let body = match &input.body {
        Body::Json(json) => json.value(live, 0).to_string().into_bytes(),
        Body::Raw(bytes) => bytes.clone(),
    };
    let client = Ipv4Addr::from(input.client);
    Request {
        method,
        path,
        headers,
        body: body.into(),
        client_ip: Some(IpAddr::V4(client)),
    }
}

fn assert_answer(input: &Input, reply: &Reply) {
    let status = reply.status.as_u16();
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    if status >= 400 {
        let code = body["error"].as_str();
        assert!(code.is_some(), "{input:?}: {status} without a JSON error");
        assert!(
            status < 500 || (status == 503 && code == Some("busy")),
            "{input:?}: {status} {body}"
        );
    }
}

pub fn ceremony_json(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let world = world();
    world.runtime.block_on(async {
        let live = begin_live(world).await;
        let reply = world.endpoints.handle(request(&input, &live)).await;
        assert_answer(&input, &reply);
        purge_now_and_then(world).await;
    });
}

/// A ceremony really in flight, so a body may name it.
async fn begin_live(world: &World) -> String {
    let begin = Request {
        method: Method::POST,
        path: "/passkeys/login/begin".into(),
        headers: HeaderMap::from_iter([(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]),
        body: "{}".into(),
        client_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    let reply = world.endpoints.handle(begin).await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    body["session_id"].as_str().unwrap_or_default().to_string()
}

/// Every few thousand inputs, expire what they left behind (as the upkeep would, a day later),
/// so the ceremony cap does not turn every later input into a 503.
async fn purge_now_and_then(world: &World) {
    let due = {
        let mut inputs = world.inputs.lock().expect("counter");
        *inputs += 1;
        *inputs % 2_000 == 0
    };
    if due {
        world
            .gateway
            .upkeep_once(world.gateway.now() + 86_400)
            .await;
    }
}
