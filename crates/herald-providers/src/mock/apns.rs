//! A mock APNs: HTTP/2 only, verifies provider tokens and the `apns-*` headers like Apple does.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;

use super::control::{Control, control_methods};
use super::fixtures::{EC_PUBLIC_PEM, TEST_BUNDLE_ID, TEST_KEY_ID, TEST_TEAM_ID};
use super::server::{self, Server};
use super::{MockRequest, MockResponse};

/// Apple refuses provider tokens older than this.
const TOKEN_MAX_AGE_SECS: u64 = 3600;

/// What the APNs mock accepts.
#[derive(Debug, Clone)]
pub struct MockApnsConfig {
    /// Verifies provider tokens: the P-256 public key (SPKI PEM) or the `.p8` private key.
    pub verify_key_pem: String,
    pub team_id: String,
    pub key_id: String,
    /// When set, `apns-topic` must be this or `<bundle_id>.voip`.
    pub bundle_id: Option<String>,
}

impl MockApnsConfig {
    /// Accepts tokens signed by `verify_key_pem`'s key with this team and key id, for any topic.
    pub fn new(verify_key_pem: impl Into<String>, team_id: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self { verify_key_pem: verify_key_pem.into(), team_id: team_id.into(), key_id: key_id.into(), bundle_id: None }
    }

    /// Matches [`fixtures::apns_channel_config`](super::fixtures::apns_channel_config).
    pub fn with_test_key() -> Self {
        Self::new(EC_PUBLIC_PEM, TEST_TEAM_ID, TEST_KEY_ID).bundle_id(TEST_BUNDLE_ID)
    }

    /// Requires `apns-topic` to be `bundle_id` or `<bundle_id>.voip`.
    pub fn bundle_id(mut self, bundle_id: impl Into<String>) -> Self {
        self.bundle_id = Some(bundle_id.into());
        self
    }
}

/// A running mock APNs. Default answer: 200 with the request's `apns-id` echoed.
pub struct MockApns {
    base_url: String,
    control: Arc<Control>,
    _server: Server,
}

impl std::fmt::Debug for MockApns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockApns").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl MockApns {
    /// Starts the mock on a free loopback port.
    ///
    /// # Errors
    /// If the verification key does not parse or no port can be bound.
    pub async fn start(config: MockApnsConfig) -> io::Result<Self> {
        let verifier = Arc::new(Verifier::new(config)?);
        let control = Arc::new(Control::default());
        let (listener, addr) = server::bind().await?;
        let handler_control = control.clone();
        let handler = Arc::new(move |request: MockRequest| answer(&verifier, &handler_control, request));
        let server = server::serve(listener, true, handler);
        Ok(Self { base_url: format!("http://{addr}"), control, _server: server })
    }

    control_methods!();
}

fn answer(verifier: &Verifier, control: &Control, mut request: MockRequest) -> MockResponse {
    let response = match verifier.check(&request) {
        Err(refusal) => {
            request.rejection = Some(refusal.describe());
            refusal
        }
        Ok(()) => {
            let mut response = control.scripted(&request).unwrap_or_else(|| MockResponse::new(200));
            if let Some(id) = request.header("apns-id").filter(|_| !response.has_header("apns-id")) {
                response = response.with_header("apns-id", id);
            }
            response
        }
    };
    control.record(request, response.status);
    response
}

/// Provider token claims.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
}

/// Checks requests the way APNs does, caching tokens it verified (Herald reuses one token for
/// 40 minutes, so a benchmark verifies each signature once).
struct Verifier {
    key: DecodingKey,
    config: MockApnsConfig,
    verified: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    fn new(config: MockApnsConfig) -> io::Result<Self> {
        Ok(Self { key: decoding_key(&config.verify_key_pem)?, config, verified: Mutex::default() })
    }

    fn check(&self, request: &MockRequest) -> Result<(), MockResponse> {
        if request.method != "POST" {
            return Err(MockResponse::apns_error(405, "MethodNotAllowed"));
        }
        let Some(device) = request.path.strip_prefix("/3/device/") else {
            return Err(MockResponse::apns_error(404, "BadPath"));
        };
        if device.is_empty() || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MockResponse::apns_error(400, "BadDeviceToken"));
        }
        self.check_token(request)?;
        let push_type = self.check_headers(request)?;
        check_body(&request.body, push_type)
    }

    fn check_token(&self, request: &MockRequest) -> Result<(), MockResponse> {
        let header = request.header("authorization").unwrap_or_default();
        let Some(jwt) = header.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| &header[7..]) else {
            return Err(MockResponse::apns_error(403, "MissingProviderToken"));
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let cached = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(jwt).copied();
        let iat = match cached {
            Some(iat) => iat,
            None => {
                let iat = self.verify(jwt).ok_or_else(|| MockResponse::apns_error(403, "InvalidProviderToken"))?;
                self.verified.lock().unwrap_or_else(PoisonError::into_inner).insert(jwt.to_owned(), iat);
                iat
            }
        };
        if now.saturating_sub(iat) > TOKEN_MAX_AGE_SECS {
            return Err(MockResponse::apns_error(403, "ExpiredProviderToken"));
        }
        Ok(())
    }

    /// The token's `iat` if the signature, `alg`, `kid` and `iss` are right.
    fn verify(&self, jwt: &str) -> Option<u64> {
        let header = decode_header(jwt).ok()?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.config.key_id.as_str()) {
            return None;
        }
        let mut validation = Validation::new(Algorithm::ES256);
        // APNs tokens carry no `exp`; their age is judged by `iat`.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = decode::<Claims>(jwt, &self.key, &validation).ok()?.claims;
        (claims.iss == self.config.team_id).then_some(claims.iat)
    }

    /// Checks the `apns-*` headers; returns the push type.
    fn check_headers(&self, request: &MockRequest) -> Result<String, MockResponse> {
        let bad = |reason: &str| MockResponse::apns_error(400, reason);
        let topic = request.header("apns-topic").ok_or_else(|| bad("MissingTopic"))?;
        let push_type = request.header("apns-push-type").unwrap_or_default();
        if !matches!(push_type, "alert" | "background" | "voip" | "complication" | "fileprovider" | "mdm" | "location")
        {
            return Err(bad("InvalidPushType"));
        }
        if let Some(bundle) = &self.config.bundle_id {
            let voip = topic.strip_suffix(".voip");
            if voip.unwrap_or(topic) != bundle || voip.is_some() != (push_type == "voip") {
                return Err(bad("DeviceTokenNotForTopic"));
            }
        }
        if !request.header("apns-id").is_some_and(is_uuid) {
            return Err(bad("BadMessageId"));
        }
        let priority = request.header("apns-priority").unwrap_or("10");
        if !matches!(priority, "1" | "5" | "10") || (push_type == "background" && priority == "10") {
            return Err(bad("BadPriority"));
        }
        if request.header("apns-expiration").is_some_and(|e| e.parse::<u64>().is_err()) {
            return Err(bad("BadExpirationDate"));
        }
        if request.header("apns-collapse-id").is_some_and(|c| c.len() > 64) {
            return Err(bad("BadCollapseId"));
        }
        Ok(push_type.to_owned())
    }
}

/// Size limits per push type, and a JSON object with an `aps` dictionary.
fn check_body(body: &[u8], push_type: String) -> Result<(), MockResponse> {
    let limit = if push_type == "voip" { 5120 } else { 4096 };
    if body.is_empty() {
        return Err(MockResponse::apns_error(400, "PayloadEmpty"));
    }
    if body.len() > limit {
        return Err(MockResponse::apns_error(413, "PayloadTooLarge"));
    }
    match serde_json::from_slice::<Value>(body) {
        // Not an Apple reason: Apple does not document one for malformed JSON.
        Ok(payload) if payload.get("aps").is_some_and(Value::is_object) => Ok(()),
        _ => Err(MockResponse::apns_error(400, "BadPayload")),
    }
}

/// `8-4-4-4-12` hexadecimal, as Apple requires of `apns-id`.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A verification key from an SPKI public key PEM or a PKCS#8 private key (`.p8`) PEM.
fn decoding_key(pem: &str) -> io::Result<DecodingKey> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, format!("mock APNs key: {e}"));
    if pem.contains("PRIVATE KEY") {
        let private = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, private.as_bytes())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(DecodingKey::from_ec_der(pair.public_key().as_ref()))
    } else {
        DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))
    }
}
