//! Extractors: body parsing with precise field errors, path and query parameters rendered in
//! Herald's error format, and authentication — so a handler's signature says who may call it.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use herald_core::jwt::ExpPolicy;
use herald_core::keys::ct_eq;
use herald_core::model::{Account, KeyKind};
use herald_core::service::ClientCtx;
use herald_core::{FieldError, ServiceError};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// A JSON body: malformed JSON is 400 `invalid_json`; wrong types and missing fields are 422
/// with the offending field's path.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The body is parsed as JSON whatever the Content-Type says: clients (and curl users)
        // often send JSON labelled as a form, and rejecting them helps nobody.
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ServiceError::invalid("body", "too_long", "request body is too large")
            } else {
                ServiceError::BadRequest { reason: "invalid_json", param: None, message: e.body_text() }
            }
        })?;
        // An absent body is an empty object, so `PUT /v1/users/{user}` needs none.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}").map(JsonBody);
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON into `T` with field-precise errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| bad_request("invalid_json", None, &format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad_request("invalid_json", None, "request body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let (field, reason) = match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or_default();
                let field = if path == "." { name.to_string() } else { format!("{path}.{name}") };
                (field, "required")
            }
            None if inner.starts_with("unknown variant") => (path, "invalid"),
            None => (path, "invalid_type"),
        };
        ApiError(ServiceError::Validation(vec![FieldError::new(field, reason, inner)]))
    })
}

fn bad_request(reason: &'static str, param: Option<String>, message: &str) -> ApiError {
    ApiError(ServiceError::BadRequest { reason, param, message: message.to_string() })
}

/// A path parameter; a malformed one is 400 `invalid_param`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| bad_request("invalid_param", None, &e.body_text()))
    }
}

/// Query parameters; malformed ones are 400 `invalid_param`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| bad_request("invalid_param", None, &e.body_text()))
    }
}

/// The bearer token of `Authorization`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

fn missing() -> ApiError {
    ApiError(ServiceError::Unauthenticated("missing credentials: send Authorization: Bearer <key>".into()))
}

/// The account's backend, authenticated by a secret key (`sk_…`).
pub struct Backend(pub Account);

impl<S: Send + Sync> FromRequestParts<S> for Backend
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = AppState::from_ref(state);
        let token = bearer(&parts.headers).ok_or_else(missing)?;
        let (account, key) = app.svc.authenticate_key(token, KeyKind::Secret).await?;
        app.limit(&account, &format!("key:{}", key.id))?;
        Ok(Backend(account))
    }
}

/// A browser or app acting for one user: a session token, or a public key with a user JWT
/// (`x-herald-user-token`) or, in dev mode, a plain `x-herald-user-id`.
pub struct Client(pub ClientCtx);

impl<S: Send + Sync> FromRequestParts<S> for Client
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = AppState::from_ref(state);
        let token = bearer(&parts.headers).ok_or_else(missing)?;
        let (ctx, credential) = if token.starts_with("ses_") {
            (app.svc.authenticate_session(token).await?, format!("session:{}", herald_core::keys::lookup_prefix(token)))
        } else {
            let user_token = header(&parts.headers, "x-herald-user-token");
            let dev_user = header(&parts.headers, "x-herald-user-id");
            let ctx = app.svc.authenticate_client(token, user_token, dev_user, ExpPolicy::Required).await?;
            // A verified JWT names its user, so each user of a public key has a budget; a dev-mode
            // user id is client-supplied and never selects a budget.
            let credential = match user_token {
                Some(_) => format!("pk:{}:{}", herald_core::keys::lookup_prefix(token), ctx.external_id),
                None => format!("pk:{}", herald_core::keys::lookup_prefix(token)),
            };
            (ctx, credential)
        };
        app.limit(&ctx.account, &credential)?;
        Ok(Client(ctx))
    }
}

/// The operator, authenticated by the configured admin token. When no token is configured the
/// operator API does not exist (404), so its presence is not advertised.
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = AppState::from_ref(state);
        let Some(expected) = app.admin_token.as_deref() else {
            return Err(ApiError(ServiceError::not_found("route", parts.uri.path())));
        };
        let presented = bearer(&parts.headers).ok_or_else(missing)?;
        // Compare digests so the comparison is constant-time whatever the lengths.
        let ok = ct_eq(&herald_core::keys::hash(presented), &herald_core::keys::hash(expected));
        if !ok {
            return Err(ApiError(ServiceError::Unauthenticated("invalid admin token".into())));
        }
        Ok(Admin)
    }
}

#[cfg(test)]
mod fuzz {
    //! Randomised robustness of the parsers that face the network: whatever bytes arrive, they
    //! answer with an error or a value, never a panic. Deterministic (seeded) so failures repeat.

    use serde_json::{Value, json};

    use super::parse_json;
    use crate::http::v1::notifications::SendBody;
    use crate::http::v1::subscriptions::RegisterSubscription;
    use herald_core::model::ChannelType;
    use herald_core::validate::{self, HttpsOnly};

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*: plenty for input generation.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        [
            json!({"to": {"user": "alice"}, "title": "t", "body": "b", "data": {"k": [1, 2]}, "ttl": 60, "urgency": "high"}),
            json!({"to": {"users": ["a", "b"]}, "send_at": "2030-01-01T00:00:00Z", "channels": ["web_push"], "apns": {"aps": {}}}),
            json!({"settings": {"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "BCVx", "auth": "BTBZ"}}, "topics": ["a"]}),
            json!({"channel_id": "c", "settings": {"token": "ab12"}, "kind": "voip", "environment": "sandbox"}),
        ]
        .iter()
        .map(|v| v.to_string().into_bytes())
        .collect()
    }

    fn mutate(rng: &mut Rng, mut input: Vec<u8>) -> Vec<u8> {
        const INTERESTING: &[&[u8]] =
            &[b"null", b"-1", b"1e999", b"\"\\u0000\"", b"[]", b"{}", b"\"\xff\"", b"18446744073709551616", b"true"];
        for _ in 0..=rng.below(4) {
            let at = if input.is_empty() { 0 } else { rng.below(input.len()) };
            match rng.below(4) {
                0 if !input.is_empty() => {
                    input.remove(at);
                }
                1 => input.insert(at, rng.next() as u8),
                2 => {
                    let piece = INTERESTING[rng.below(INTERESTING.len())];
                    input.splice(at..at, piece.iter().copied());
                }
                _ => input.truncate(at),
            }
        }
        input
    }

    #[test]
    fn request_parsers_never_panic() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let seeds = seeds();
        for i in 0..20_000 {
            let input = mutate(&mut rng, seeds[i % seeds.len()].clone());
            let _ = parse_json::<SendBody>(&input);
            let _ = parse_json::<RegisterSubscription>(&input);
            if let Ok(v) = serde_json::from_slice::<Value>(&input) {
                let settings = v.get("settings").cloned().unwrap_or(v);
                for t in ChannelType::ALL {
                    let _ = validate::settings(*t, &settings, &HttpsOnly);
                }
                let _ = validate::implied_channel_type(&settings);
            }
        }
    }

    #[test]
    fn web_push_keys_survive_random_bytes() {
        let mut rng = Rng(42);
        for _ in 0..5_000 {
            let len = rng.below(70);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let encoded = validate::to_b64url(&bytes);
            let settings = json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": encoded, "auth": encoded});
            // Random bytes are (overwhelmingly) not a point on the curve: refused, not a panic.
            assert!(validate::settings(ChannelType::WebPush, &settings, &HttpsOnly).is_err());
        }
    }
}
