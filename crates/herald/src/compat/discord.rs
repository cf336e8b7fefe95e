//! The Discord-style devices surface (`seeds/003`): register and unregister a device's push
//! token, get a sync token, and sync one device across several users.
//!
//! `Authorization: <session token>`, with or without `Bearer`. Providers: `gcm` is FCM, `apns`
//! APNs production, `apns_internal` APNs sandbox; `*_voip` registers a VoIP (PushKit)
//! subscription. Errors are Discord's: 401 `{"message": "401: Unauthorized", "code": 0}`, and
//! 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {…}}` for invalid fields.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use herald_core::keys::lookup_prefix;
use herald_core::model::{ChannelType, Environment, SubscriptionKind};
use herald_core::service::{ClientCtx, DeviceRoute, DeviceToken};
use herald_core::{FieldError, ServiceError};
use serde_json::{Map, Value, json};

use crate::http::AppState;
use crate::http::error::{classify, log_if_internal};

/// Every provider name, as the page lists them.
const PROVIDERS: [&str; 5] = ["gcm", "apns", "apns_internal", "apns_voip", "apns_internal_voip"];
/// Discord's code for field errors.
const INVALID_FORM_BODY: u32 = 50035;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/users/@me/devices", post(register).delete(unregister))
        .route("/users/@me/devices/sync-token", get(sync_token))
        .route("/users/@me/devices/sync", put(sync))
}

/// An error in Discord's shape.
#[derive(Debug)]
enum Failure {
    /// 400 `Invalid Form Body` with per-field errors.
    Fields(Vec<FieldError>),
    /// 400: the body is not a JSON object.
    InvalidJson,
    Service(ServiceError),
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(fields) => Failure::Fields(fields),
            other => Failure::Service(other),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Failure::Fields(fields) => (
                StatusCode::BAD_REQUEST,
                json!({"code": INVALID_FORM_BODY, "message": "Invalid Form Body", "errors": field_errors(&fields)}),
            ),
            Failure::InvalidJson => {
                (StatusCode::BAD_REQUEST, json!({"code": 50109, "message": "The request body contains invalid JSON."}))
            }
            Failure::Service(e) => service_error(&e),
        };
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS).then(|| body["retry_after"].to_string());
        let mut res = (status, Json(body)).into_response();
        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            res.headers_mut().insert(header::RETRY_AFTER, value);
        }
        res
    }
}

fn service_error(e: &ServiceError) -> (StatusCode, Value) {
    log_if_internal(e);
    let (_, status, details) = classify(e);
    let body = match status {
        StatusCode::FORBIDDEN => json!({"message": "Missing Access", "code": 50001}),
        StatusCode::TOO_MANY_REQUESTS => json!({
            "message": "You are being rate limited.",
            "retry_after": details.get("retry_after").cloned().unwrap_or(json!(1)),
            "global": false,
        }),
        other => {
            json!({"message": format!("{}: {}", other.as_u16(), other.canonical_reason().unwrap_or("Error")), "code": 0})
        }
    };
    (status, body)
}

/// Discord's nested field errors: `{"a": {"0": {"_errors": [{"code", "message"}]}}}` for `a[0]`.
fn field_errors(fields: &[FieldError]) -> Value {
    let mut root = Map::new();
    for f in fields {
        let mut node = &mut root;
        for part in f.field.split(['.', '[']).map(|p| p.trim_end_matches(']')).filter(|p| !p.is_empty()) {
            node = node.entry(part).or_insert_with(|| json!({})).as_object_mut().expect("error nodes are objects");
        }
        let errors = node.entry("_errors").or_insert_with(|| json!([]));
        if let Some(list) = errors.as_array_mut() {
            list.push(json!({"code": discord_code(f.reason), "message": discord_message(f)}));
        }
    }
    Value::Object(root)
}

fn discord_code(reason: &str) -> &'static str {
    match reason {
        "required" => "BASE_TYPE_REQUIRED",
        "choices" => "BASE_TYPE_CHOICES",
        "invalid_type" => "BASE_TYPE_STRING",
        "not_array" => "BASE_TYPE_ARRAY",
        "too_long" => "BASE_TYPE_BAD_LENGTH",
        "not_configured" => "PUSH_PROVIDER_NOT_CONFIGURED",
        _ => "BASE_TYPE_INVALID",
    }
}

fn discord_message(f: &FieldError) -> String {
    match f.reason {
        "required" => "This field is required".into(),
        "invalid_type" => "Must be a string.".into(),
        _ => f.message.clone(),
    }
}

/// The session's user.
struct User(ClientCtx);

impl<S: Send + Sync> FromRequestParts<S> for User
where
    AppState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let app = AppState::from_ref(state);
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let token = value.trim();
        let token = match token.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => token,
        };
        if token.is_empty() {
            return Err(Failure::Service(ServiceError::Unauthenticated("no token".into())).into_response());
        }
        let reject = |e: ServiceError| Failure::from(e).into_response();
        let ctx = app.svc.authenticate_session(token).await.map_err(reject)?;
        app.limit(&ctx.account, &format!("session:{}", lookup_prefix(token))).map_err(reject)?;
        Ok(User(ctx))
    }
}

/// The JSON object of a request body (an empty body is `{}`).
fn object(body: &[u8]) -> Result<Map<String, Value>, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(Failure::InvalidJson),
    }
}

/// Reads the request's fields, collecting every field error before failing.
struct Form {
    obj: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Form {
    fn string(&mut self, name: &str, required: bool) -> Option<String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.errors.push(FieldError::required(name));
                }
                None
            }
            Some(Value::String(s)) if s.is_empty() && required => {
                self.errors.push(FieldError::required(name));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.push(FieldError::new(name, "invalid_type", format!("{name} must be a string")));
                None
            }
        }
    }

    fn provider(&mut self, name: &'static str, required: bool) -> Option<DeviceRoute> {
        let value = self.string(name, required)?;
        let route = route(&value);
        if route.is_none() {
            let choices = PROVIDERS.map(|p| format!("'{p}'")).join(", ");
            self.errors.push(FieldError::new(name, "choices", format!("Value must be one of ({choices}).")));
        }
        route
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Failure> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(Failure::Fields(self.errors)),
        }
    }
}

/// Where a provider name sends a token.
fn route(provider: &str) -> Option<DeviceRoute> {
    let (channel_type, environment) = match provider.strip_suffix("_voip").unwrap_or(provider) {
        "gcm" => (ChannelType::Fcm, None),
        "apns" => (ChannelType::Apns, Some(Environment::Production)),
        "apns_internal" => (ChannelType::Apns, Some(Environment::Sandbox)),
        _ => return None,
    };
    let voip = provider.ends_with("_voip");
    if voip && channel_type != ChannelType::Apns {
        return None;
    }
    let kind = if voip { SubscriptionKind::Voip } else { SubscriptionKind::Standard };
    Some(DeviceRoute { channel_type, environment, kind })
}

fn device(route: DeviceRoute, token: String, route_field: &'static str, token_field: &'static str) -> DeviceToken {
    DeviceToken { route, token, bundle_id: None, route_field, token_field }
}

/// `provider` and `token`, the device every endpoint names.
fn primary(form: &mut Form) -> Option<DeviceToken> {
    let route = form.provider("provider", true);
    let token = form.string("token", true);
    Some(device(route?, token?, "provider", "token"))
}

/// `voip_provider` and `voip_token`: a PushKit token registered as a `voip` subscription. The
/// VoIP provider defaults to the VoIP variant of an APNs `provider`.
fn voip(form: &mut Form, primary: Option<&DeviceToken>) -> Option<DeviceToken> {
    let explicit = form.provider("voip_provider", false);
    let token = form.string("voip_token", explicit.is_some())?;
    let from_primary = primary.map(|p| p.route).filter(|r| r.channel_type == ChannelType::Apns);
    let Some(route) = explicit.or(from_primary) else {
        form.errors.push(FieldError::required("voip_provider"));
        return None;
    };
    if route.channel_type != ChannelType::Apns {
        form.errors.push(FieldError::new("voip_provider", "choices", "VoIP tokens are APNs tokens"));
        return None;
    }
    let route = DeviceRoute { kind: SubscriptionKind::Voip, ..route };
    Some(device(route, token, "voip_provider", "voip_token"))
}

/// `POST /users/@me/devices`: 204.
#[tracing::instrument(skip_all)]
async fn register(User(user): User, State(app): State<AppState>, body: Bytes) -> Result<StatusCode, Failure> {
    let mut form = Form { obj: object(&body)?, errors: Vec::new() };
    let primary = primary(&mut form);
    let voip = voip(&mut form, primary.as_ref());
    let primary = form.finish(primary)?;
    let devices: Vec<DeviceToken> = std::iter::once(primary).chain(voip).collect();
    app.svc.register_devices(user.account.id, &user.external_id, &devices).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /users/@me/devices`: 204, for the caller only.
#[tracing::instrument(skip_all)]
async fn unregister(User(user): User, State(app): State<AppState>, body: Bytes) -> Result<StatusCode, Failure> {
    let mut form = Form { obj: object(&body)?, errors: Vec::new() };
    let d = primary(&mut form);
    let d = form.finish(d)?;
    app.svc.unregister_device(user.account.id, &user.external_id, d.route, &d.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/@me/devices/sync-token`
#[tracing::instrument(skip_all)]
async fn sync_token(User(user): User, State(app): State<AppState>) -> Result<Json<Value>, Failure> {
    let token = app.svc.device_sync_token(user.account.id, &user.external_id).await?;
    Ok(Json(json!({ "token": token })))
}

/// `PUT /users/@me/devices/sync`
#[tracing::instrument(skip_all)]
async fn sync(User(user): User, State(app): State<AppState>, body: Bytes) -> Result<Json<Value>, Failure> {
    let mut form = Form { obj: object(&body)?, errors: Vec::new() };
    let d = primary(&mut form);
    let tokens = sync_tokens(&mut form);
    let d = form.finish(d)?;
    let invalid = app.svc.sync_device(user.account.id, &user.external_id, &d, &tokens).await?;
    Ok(Json(json!({ "invalid_push_sync_tokens": invalid })))
}

fn sync_tokens(form: &mut Form) -> Vec<String> {
    match form.obj.get("push_sync_tokens") {
        // The page marks no field of the sync optional: an absent list is an error, not "none".
        None | Some(Value::Null) => {
            form.errors.push(FieldError::required("push_sync_tokens"));
            Vec::new()
        }
        Some(Value::Array(items)) => {
            let mut tokens = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(t) => tokens.push(t.to_string()),
                    None => form.errors.push(FieldError::new(
                        format!("push_sync_tokens[{i}]"),
                        "invalid_type",
                        "must be a string",
                    )),
                }
            }
            tokens
        }
        Some(_) => {
            form.errors.push(FieldError::new("push_sync_tokens", "not_array", "Must be an array."));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_route_to_channel_environment_and_kind() {
        let r = |p| route(p).map(|r| (r.channel_type, r.environment, r.kind));
        assert_eq!(r("gcm"), Some((ChannelType::Fcm, None, SubscriptionKind::Standard)));
        assert_eq!(r("apns"), Some((ChannelType::Apns, Some(Environment::Production), SubscriptionKind::Standard)));
        assert_eq!(
            r("apns_internal_voip"),
            Some((ChannelType::Apns, Some(Environment::Sandbox), SubscriptionKind::Voip))
        );
        assert_eq!(r("gcm_voip"), None);
        assert_eq!(r("web"), None);
    }

    #[test]
    fn field_errors_nest_like_discord() {
        let errors = field_errors(&[
            FieldError::required("provider"),
            FieldError::new("push_sync_tokens[1]", "invalid_type", "x"),
        ]);
        assert_eq!(
            errors["provider"]["_errors"][0],
            json!({"code": "BASE_TYPE_REQUIRED", "message": "This field is required"})
        );
        assert_eq!(errors["push_sync_tokens"]["1"]["_errors"][0]["code"], "BASE_TYPE_STRING");
    }
}
