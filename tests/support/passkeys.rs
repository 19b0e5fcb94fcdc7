//! A browser stand-in for passkey tests: it holds a software authenticator (webauthn-authenticator-rs
//! `SoftPasskey`, real keys and signatures), the session cookie, and speaks the gateway's JSON API
//! with the `Origin` a browser would send.

use passkey_gateway::gateway::unix_now;
use passkey_gateway::store::{hash_secret, NewUser, User};
use passkey_gateway::Gateway;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url,
};

/// Creates a user and a one-time enrollment token for them, as `user add` does.
pub async fn enroll(gw: &Gateway, username: &str, groups: &[&str]) -> (User, String) {
    let user = gw
        .store()
        .create_user(NewUser {
            username: username.to_string(),
            display_name: format!("{username} (display)"),
            email: Some(format!("{username}@example.com")),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })
        .await
        .expect("create user");
    let token = passkey_gateway::session::new_session_value();
    gw.store()
        .create_enrollment(user.id, hash_secret(&token), unix_now() + 3600)
        .await
        .expect("create enrollment");
    (user, token)
}

/// One browser with one authenticator.
pub struct Browser {
    pub base: String,
    pub origin: Url,
    pub cookie: Option<String>,
    pub authenticator: SoftPasskey,
    last_credential: Option<Vec<u8>>,
    http: reqwest::Client,
}

/// A JSON reply: status and body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub set_cookie: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            origin: Url::parse(base).expect("origin"),
            cookie: None,
            authenticator: SoftPasskey::new(true),
            last_credential: None,
            http: super::client(),
        }
    }

    fn origin_header(&self) -> String {
        self.origin.origin().ascii_serialization()
    }

    /// Sends a request as a page of this origin would; remembers a new session cookie.
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.try_send(method, path, body).await.expect("request")
    }

    /// [`Browser::send`] that tolerates the server vanishing (crash tests): `None` when no
    /// answer came.
    pub async fn try_send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Answer> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("origin", self.origin_header());
        if let Some(cookie) = &self.cookie {
            req = req.header("cookie", cookie);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer = read(req.send().await.ok()?).await;
        if let Some(set) = &answer.set_cookie {
            let pair = set.split(';').next().unwrap_or_default().to_string();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, v)| !v.is_empty())
                .map(|_| pair.clone());
        }
        Some(answer)
    }

    /// The id of the one credential this browser's authenticator registered last.
    pub fn authenticator_credential_id(&self) -> Vec<u8> {
        self.last_credential
            .clone()
            .expect("this browser registered a passkey")
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Begins a registration (with an enrollment token, or with the session when `None`).
    pub async fn begin_registration(
        &mut self,
        token: Option<&str>,
        name: &str,
    ) -> (String, CreationChallengeResponse) {
        let body = match token {
            Some(t) => json!({"token": t, "name": name}),
            None => json!({"name": name}),
        };
        let begun = self.post("/passkeys/register/begin", body).await;
        assert_eq!(begun.status, 200, "register/begin: {:?}", begun.body);
        let session_id = begun.body["session_id"]
            .as_str()
            .expect("session_id")
            .to_string();
        let options: CreationChallengeResponse =
            serde_json::from_value(json!({"publicKey": begun.body["publicKey"]}))
                .expect("creation options");
        (session_id, options)
    }

    /// The authenticator answers a creation request.
    pub fn create(&mut self, options: CreationChallengeResponse) -> RegisterPublicKeyCredential {
        let credential = self
            .authenticator
            .do_registration(self.origin.clone(), options)
            .expect("authenticator registers");
        self.last_credential = Some(credential.raw_id.to_vec());
        credential
    }

    /// A whole registration; returns the `register/complete` answer.
    pub async fn register(&mut self, token: Option<&str>, name: &str) -> Answer {
        let (session_id, options) = self.begin_registration(token, name).await;
        let credential = self.create(options);
        self.post(
            "/passkeys/register/complete",
            json!({"session_id": session_id, "credential": credential, "name": name}),
        )
        .await
    }

    /// A registration that tolerates the server vanishing mid-way (crash tests): `None` when any
    /// step failed to get an answer.
    pub async fn try_register(&mut self, token: &str, name: &str) -> Option<Answer> {
        let url = format!("{}/passkeys/register/begin", self.base);
        let resp = self
            .http
            .post(url)
            .header("origin", self.origin_header())
            .json(&json!({"token": token, "name": name}))
            .send()
            .await
            .ok()?;
        let begun = read(resp).await;
        let session_id = begun.body["session_id"].as_str()?.to_string();
        let options: CreationChallengeResponse =
            serde_json::from_value(json!({"publicKey": begun.body["publicKey"]})).ok()?;
        let credential = self.create(options);
        let url = format!("{}/passkeys/register/complete", self.base);
        let body = json!({"session_id": session_id, "credential": credential, "name": name});
        let resp = self
            .http
            .post(url)
            .header("origin", self.origin_header())
            .json(&body)
            .send()
            .await
            .ok()?;
        Some(read(resp).await)
    }

    /// Begins a login; returns the ceremony id and the request options.
    pub async fn begin_login(
        &mut self,
        username: Option<&str>,
    ) -> (String, RequestChallengeResponse) {
        let body = username.map_or(json!({}), |u| json!({"username": u}));
        let begun = self.post("/passkeys/login/begin", body).await;
        assert_eq!(begun.status, 200, "login/begin: {:?}", begun.body);
        let session_id = begun.body["session_id"]
            .as_str()
            .expect("session_id")
            .to_string();
        let options: RequestChallengeResponse =
            serde_json::from_value(json!({"publicKey": begun.body["publicKey"]}))
                .expect("request options");
        (session_id, options)
    }

    /// The authenticator answers a request (scoped to `options.allowCredentials`).
    pub fn assert(&mut self, options: RequestChallengeResponse) -> PublicKeyCredential {
        self.authenticator
            .do_authentication(self.origin.clone(), options)
            .expect("authenticator signs")
    }

    pub async fn complete_login(
        &mut self,
        session_id: &str,
        credential: &PublicKeyCredential,
        return_to: &str,
    ) -> Answer {
        self.post(
            "/passkeys/login/complete",
            json!({"session_id": session_id, "credential": credential, "return_to": return_to}),
        )
        .await
    }

    /// A username-scoped login that tolerates the server vanishing mid-way (crash tests): `None`
    /// when any step got no answer; the `login/complete` answer otherwise.
    pub async fn try_login(&mut self, username: &str) -> Option<Answer> {
        let body = json!({"username": username});
        let begun = self
            .try_send(reqwest::Method::POST, "/passkeys/login/begin", Some(body))
            .await?;
        let session_id = begun.body["session_id"].as_str()?.to_string();
        let options: RequestChallengeResponse =
            serde_json::from_value(json!({"publicKey": begun.body["publicKey"]})).ok()?;
        let credential = self.assert(options);
        let body = json!({"session_id": session_id, "credential": credential, "return_to": "/"});
        self.try_send(
            reqwest::Method::POST,
            "/passkeys/login/complete",
            Some(body),
        )
        .await
    }

    /// A username-scoped login.
    pub async fn login(&mut self, username: &str) -> Answer {
        let (id, options) = self.begin_login(Some(username)).await;
        let credential = self.assert(options);
        self.complete_login(&id, &credential, "/app").await
    }

    /// A usernameless login. `SoftPasskey` cannot keep discoverable credentials, so the test plays
    /// the platform's part: it names the credential and supplies the user handle itself.
    pub async fn login_discoverable(&mut self, credential_id: &[u8], user_handle: &[u8]) -> Answer {
        let (id, options) = self.begin_login(None).await;
        let credential = self.assert(with_allowed(options, credential_id));
        let credential = with_user_handle(credential, user_handle);
        self.complete_login(&id, &credential, "/").await
    }
}

/// Options naming one credential, as a platform authenticator would find it by itself.
pub fn with_allowed(
    mut options: RequestChallengeResponse,
    credential_id: &[u8],
) -> RequestChallengeResponse {
    options.public_key.allow_credentials = vec![webauthn_rs_core::proto::AllowCredentials {
        type_: "public-key".into(),
        id: credential_id.to_vec(),
        transports: None,
    }];
    options
}

/// The user handle a discoverable credential returns.
pub fn with_user_handle(mut credential: PublicKeyCredential, handle: &[u8]) -> PublicKeyCredential {
    credential.response.user_handle = Some(handle.to_vec());
    credential
}

async fn read(resp: Response) -> Answer {
    let status = resp.status();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        set_cookie,
    }
}

/// The raw credential id from a `register/complete` answer.
pub fn credential_id(answer: &Answer) -> Vec<u8> {
    use base64::Engine;
    let text = answer.body["credential_id"]
        .as_str()
        .expect("credential_id");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}
