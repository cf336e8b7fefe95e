//! A mock FCM: an OAuth2 token endpoint that verifies the service account's JWT-bearer
//! assertion, and `messages:send` that accepts only tokens it issued.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

use super::control::{Control, control_methods};
use super::fixtures::{RSA_PUBLIC_PEM, TEST_CLIENT_EMAIL, TEST_PROJECT_ID};
use super::server::{self, Server};
use super::{MockRequest, MockResponse};
use crate::fcm::{GRANT_TYPE, SCOPE};

/// Path of the mock's token endpoint.
const TOKEN_PATH: &str = "/token";

/// What the FCM mock accepts.
#[derive(Debug, Clone)]
pub struct MockFcmConfig {
    /// Verifies assertions: the service account's RSA public key (SPKI PEM).
    pub verify_key_pem: String,
    /// The only project `messages:send` accepts.
    pub project_id: String,
    /// When set, the assertion's `iss` must be this.
    pub client_email: Option<String>,
    /// `expires_in` of issued tokens; the mock refuses them afterwards.
    pub token_lifetime: Duration,
}

impl MockFcmConfig {
    /// Accepts assertions signed by `verify_key_pem`'s key, for `project_id`.
    pub fn new(verify_key_pem: impl Into<String>, project_id: impl Into<String>) -> Self {
        Self {
            verify_key_pem: verify_key_pem.into(),
            project_id: project_id.into(),
            client_email: None,
            token_lifetime: Duration::from_secs(3600),
        }
    }

    /// Matches [`fixtures::fcm_channel_config`](super::fixtures::fcm_channel_config).
    pub fn with_test_key() -> Self {
        let mut config = Self::new(RSA_PUBLIC_PEM, TEST_PROJECT_ID);
        config.client_email = Some(TEST_CLIENT_EMAIL.to_owned());
        config
    }

    /// Sets how long issued tokens live (a lifetime under a minute makes Herald fetch a new
    /// token for every send, since it refreshes a minute early).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }
}

/// A running mock FCM. Default answer: 200 `{"name": "projects/<p>/messages/<n>"}`.
pub struct MockFcm {
    base_url: String,
    control: Arc<Control>,
    state: Arc<State>,
    _server: Server,
}

impl std::fmt::Debug for MockFcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockFcm").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl MockFcm {
    /// Starts the mock on a free loopback port.
    ///
    /// # Errors
    /// If the verification key does not parse or no port can be bound.
    pub async fn start(config: MockFcmConfig) -> io::Result<Self> {
        let key = DecodingKey::from_rsa_pem(config.verify_key_pem.as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("mock FCM key: {e}")))?;
        let (listener, addr) = server::bind().await?;
        let base_url = format!("http://{addr}");
        let state = Arc::new(State {
            key,
            token_uri: format!("{base_url}{TOKEN_PATH}"),
            config,
            tokens: Mutex::default(),
            issued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            token_script: Mutex::default(),
        });
        let control = Arc::new(Control::default());
        let (handler_state, handler_control) = (state.clone(), control.clone());
        let handler = Arc::new(move |request: MockRequest| answer(&handler_state, &handler_control, request));
        let server = server::serve(listener, false, handler);
        Ok(Self { base_url, control, state, _server: server })
    }

    /// The token endpoint, for the service account's `token_uri`.
    pub fn token_uri(&self) -> &str {
        &self.state.token_uri
    }

    /// How many access tokens the mock issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state.issued.load(Ordering::Relaxed)
    }

    /// Revokes every token issued so far: the next send with one gets 401 `UNAUTHENTICATED`,
    /// which is how the provider's refresh-and-retry path is exercised.
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// Queues an answer for the next valid token request (e.g. a 400 `invalid_grant` or a 503).
    pub fn push_token_response(&self, response: MockResponse) {
        lock(&self.state.token_script).push_back(response);
    }

    control_methods!();
}

struct State {
    key: DecodingKey,
    config: MockFcmConfig,
    token_uri: String,
    /// Issued access tokens and when they expire.
    tokens: Mutex<HashMap<String, Instant>>,
    issued: AtomicU64,
    sent: AtomicU64,
    token_script: Mutex<VecDeque<MockResponse>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn answer(state: &State, control: &Control, mut request: MockRequest) -> MockResponse {
    let (checked, is_token_request) = if request.path == TOKEN_PATH {
        (state.grant(&request), true)
    } else {
        (state.check_send(&request).map(|()| state.send_answer(control, &request)), false)
    };
    let response = checked.unwrap_or_else(|refusal| {
        request.rejection = Some(refusal.describe());
        refusal
    });
    // Granted token requests are counted, not logged, so `requests()` lists sends only.
    if !is_token_request || request.rejection.is_some() {
        control.record(request, response.status);
    }
    response
}

impl State {
    /// The token endpoint: verifies the assertion (RFC 7523) and issues `tok-<n>`.
    fn grant(&self, request: &MockRequest) -> Result<MockResponse, MockResponse> {
        let oauth_error = |error: &str, description: &str| {
            MockResponse::json(400, &json!({"error": error, "error_description": description}))
        };
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        if request.method != "POST" || form.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
            return Err(oauth_error("unsupported_grant_type", "Invalid grant_type"));
        }
        let assertion = form.get("assertion").map(String::as_str).unwrap_or_default();
        let claims = self.verify_assertion(assertion).ok_or_else(|| oauth_error("invalid_grant", "Invalid JWT"))?;
        if claims.scope.split(' ').all(|s| s != SCOPE) {
            return Err(oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided."));
        }
        if claims.exp.saturating_sub(claims.iat) > 3600 {
            return Err(oauth_error("invalid_grant", "Invalid JWT: exp too far in the future"));
        }
        if let Some(scripted) = lock(&self.token_script).pop_front() {
            return Ok(scripted);
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("tok-{n}");
        lock(&self.tokens).insert(token.clone(), Instant::now() + self.config.token_lifetime);
        let lifetime = self.config.token_lifetime.as_secs();
        Ok(MockResponse::json(200, &json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})))
    }

    fn verify_assertion(&self, assertion: &str) -> Option<crate::fcm::AssertionClaims> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.token_uri]);
        if let Some(email) = &self.config.client_email {
            validation.set_issuer(&[email]);
        }
        decode(assertion, &self.key, &validation).ok().map(|data| data.claims)
    }

    /// `messages:send`: the bearer token, the project and the message's shape.
    fn check_send(&self, request: &MockRequest) -> Result<(), MockResponse> {
        let project = request.path.strip_prefix("/v1/projects/").and_then(|p| p.strip_suffix("/messages:send"));
        let Some(project) = project.filter(|_| request.method == "POST") else {
            return Err(MockResponse::new(404));
        };
        let bearer = request.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or_default();
        let valid = lock(&self.tokens).get(bearer).is_some_and(|expiry| Instant::now() < *expiry);
        if !valid {
            return Err(MockResponse::fcm_error(401, "UNAUTHENTICATED", None));
        }
        if project != self.config.project_id {
            return Err(MockResponse::fcm_error(403, "PERMISSION_DENIED", None));
        }
        let message = request.json().and_then(|body| body.get("message").cloned()).unwrap_or(Value::Null);
        check_message(&message).map_err(|_| MockResponse::fcm_error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT")))
    }

    fn send_answer(&self, control: &Control, request: &MockRequest) -> MockResponse {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        control.scripted(request).unwrap_or_else(|| {
            MockResponse::json(200, &json!({"name": format!("projects/{}/messages/{n}", self.config.project_id)}))
        })
    }
}

/// The FCM v1 rules Herald could break: one target, string-only `data`, valid Android
/// priority and TTL.
fn check_message(message: &Value) -> Result<(), ()> {
    let targets = ["token", "topic", "condition"].iter().filter(|k| message.get(**k).is_some()).count();
    let token_ok = message.get("token").is_none_or(|t| t.as_str().is_some_and(|t| !t.is_empty()));
    let data_ok = message.get("data").is_none_or(|d| d.as_object().is_some_and(|m| m.values().all(Value::is_string)));
    let android = message.get("android");
    let priority_ok = android
        .and_then(|a| a.get("priority"))
        .is_none_or(|p| matches!(p.as_str(), Some("HIGH" | "NORMAL" | "high" | "normal")));
    let ttl_ok = android.and_then(|a| a.get("ttl")).is_none_or(|t| t.as_str().is_some_and(is_duration));
    (message.is_object() && targets == 1 && token_ok && data_ok && priority_ok && ttl_ok).then_some(()).ok_or(())
}

/// A protobuf JSON duration: seconds with up to nine fractional digits and an `s` suffix.
fn is_duration(text: &str) -> bool {
    let Some(number) = text.strip_suffix('s') else { return false };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (1..=9).contains(&fraction.len())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}
