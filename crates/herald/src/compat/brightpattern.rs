//! The Bright Pattern surface (`seeds/002`): *Request Chat* and *Mobile Notification
//! Subscription* of the mobile client API.
//!
//! `Authorization: MOBILE-API-140-327-PLAIN appId="<pk_…>", clientId="<id>"`: the account is
//! the public key's, the user is the client id; `clientId="WebChat"` means the client is the one
//! named by the `bp_client_id` cookie, which *Request Chat* sets when it is absent. A chat is the
//! topic `chat:<chat_id>`. `tenantUrl` is accepted and ignored: the key names the tenant.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use herald_core::ServiceError;
use herald_core::keys::lookup_prefix;
use herald_core::model::{ChannelType, SubscriptionKind};
use herald_core::service::{ChatService, ClientCtx, DeviceRoute, DeviceToken};
use serde_json::{Map, Value, json};

use crate::http::AppState;
use crate::http::error::{classify, log_if_internal, public_message};

/// The authorization scheme of the mobile API.
const SCHEME: &str = "MOBILE-API-140-327-PLAIN";
/// The client id that means "identified by cookie".
const WEB_CHAT: &str = "WebChat";
/// The cookie that identifies a `WebChat` client.
const CLIENT_COOKIE: &str = "bp_client_id";
const APNS_TOKEN: &str = "ios_apns_device_token";
const BUNDLE_ID: &str = "ios_app_bundle_id";
const FIREBASE_TOKENS: [&str; 2] = ["ios_firebase_device_token", "android_firebase_device_token"];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/clientweb/api/v1/chats", post(request_chat))
        .route("/clientweb/api/v2/chats/{chat_id}/notifications", post(subscribe))
}

/// An error in the API's own shape: `{"error_code": <HTTP status>, "error_message": "…"}`; the
/// seconds to wait when it is a 429.
#[derive(Debug)]
struct Failure(StatusCode, String, Option<u64>);

impl Failure {
    fn forbidden() -> Self {
        Failure(StatusCode::FORBIDDEN, "Forbidden".into(), None)
    }

    fn not_acceptable(why: &str) -> Self {
        Failure(StatusCode::NOT_ACCEPTABLE, format!("Not acceptable: {why}"), None)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut res = (self.0, Json(json!({"error_code": self.0.as_u16(), "error_message": self.1}))).into_response();
        if let Some(seconds) = self.2 {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        log_if_internal(&e);
        match &e {
            // Bad credentials and unknown (or another client's) chats are all 403, as documented.
            ServiceError::Unauthenticated(_) | ServiceError::Forbidden { .. } | ServiceError::NotFound { .. } => {
                Failure::forbidden()
            }
            ServiceError::Validation(fields) => {
                let why = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>();
                Failure::not_acceptable(&why.join("; "))
            }
            other => {
                let (_, status, details) = classify(other);
                Failure(status, public_message(other), details["retry_after"].as_u64())
            }
        }
    }
}

/// The `appId` and `clientId` of the authorization header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, params) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let mut app_id = None;
    let mut client_id = None;
    for param in params.split(',') {
        let (name, value) = param.trim().split_once('=')?;
        let value = value.trim().trim_matches('"').to_string();
        match name.trim() {
            n if n.eq_ignore_ascii_case("appId") => app_id = Some(value),
            n if n.eq_ignore_ascii_case("clientId") => client_id = Some(value),
            _ => {}
        }
    }
    Some((app_id?, client_id?))
}

/// The value of the client cookie, if the request carries it.
fn client_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, value)| *name == CLIENT_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// The client of a request. For `WebChat`, the cookie's client; `mint` creates one when the
/// cookie is absent (Request Chat) and returns the cookie to set.
async fn client(app: &AppState, headers: &HeaderMap, mint: bool) -> Result<(ClientCtx, Option<String>), Failure> {
    let (app_id, client_id) = credentials(headers).ok_or_else(Failure::forbidden)?;
    let (client_id, new_cookie) = match client_id.as_str() {
        WEB_CHAT => match client_cookie(headers) {
            Some(id) => (id, None),
            None if mint => {
                let id = format!("webchat-{}", uuid::Uuid::new_v4().simple());
                (id.clone(), Some(id))
            }
            None => return Err(Failure::forbidden()),
        },
        _ => (client_id, None),
    };
    let ctx = app.svc.authenticate_app_client(&app_id, &client_id).await?;
    if credentials(headers).is_some_and(|(_, c)| c == WEB_CHAT) {
        // A cookie is sent by the browser on its own: only origins the account names may use it.
        crate::http::cors::check_credentialed(&ctx.account)?;
    }
    // The client id is the app's to choose, so the budget is the key's, never the client's.
    app.limit(&ctx.account, &format!("pk:{}", lookup_prefix(&app_id)))?;
    Ok((ctx, new_cookie))
}

fn set_cookie(app: &AppState, id: &str) -> Option<HeaderValue> {
    // A chat widget is embedded in other sites: cross-site cookies need `SameSite=None; Secure`,
    // which browsers accept only over https.
    let site = if app.public_url.starts_with("https://") { "SameSite=None; Secure" } else { "SameSite=Lax" };
    let cookie = format!("{CLIENT_COOKIE}={id}; Path=/compat/brightpattern; Max-Age=31536000; HttpOnly; {site}");
    HeaderValue::from_str(&cookie).ok()
}

/// `POST /clientweb/api/v1/chats?tenantUrl=…`: opens a chat for the client. The request's own
/// parameters (phone number, custom fields) are accepted and not used.
#[tracing::instrument(skip_all)]
async fn request_chat(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let (ctx, new_cookie) = client(&app, &headers, true).await?;
        let chat = app.svc.create_chat(ctx.account.id, &ctx.external_id).await?;
        Ok::<_, Failure>((chat, new_cookie))
    };
    match result.await {
        Ok((chat, new_cookie)) => {
            let mut res = Json(json!({"chat_id": chat.id, "state": "queued"})).into_response();
            if let Some(cookie) = new_cookie.and_then(|id| set_cookie(&app, &id)) {
                res.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            res
        }
        Err(failure) => failure.into_response(),
    }
}

/// `POST /clientweb/api/v2/chats/{chat_id}/notifications?tenantUrl=…`: exactly one token
/// parameter subscribes the client's device to the chat (replacing the one it used before);
/// `{}` cancels the client's subscriptions for the chat.
#[tracing::instrument(skip_all, fields(chat = %chat_id))]
async fn subscribe(
    State(app): State<AppState>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (ctx, _) = client(&app, &headers, false).await?;
        let device = device(&body)?;
        let services = app.svc.subscribe_chat(ctx.account.id, &ctx.external_id, &chat_id, device.as_ref()).await?;
        Ok::<_, Failure>(services)
    };
    match result.await {
        Ok(services) => {
            Json(json!({"services": services.iter().map(service_json).collect::<Vec<_>>()})).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

fn service_json(s: &ChatService) -> Value {
    let name = match s.channel_type {
        ChannelType::Apns => "apns",
        ChannelType::Fcm => "fcm",
        ChannelType::WebPush => "web_push",
    };
    json!({"name": name, "status": s.status.as_str()})
}

/// The device a subscription body names, `None` for `{}` (or no body): cancel.
fn device(body: &[u8]) -> Result<Option<DeviceToken>, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(Failure::not_acceptable("the body must be a JSON object"));
    };
    let text = |name: &str| -> Result<Option<String>, Failure> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Failure::not_acceptable(&format!("{name} must be a string"))),
        }
    };
    let mut tokens = Vec::new();
    for name in std::iter::once(APNS_TOKEN).chain(FIREBASE_TOKENS) {
        if let Some(token) = text(name)? {
            tokens.push((name, token));
        }
    }
    let bundle_id = text(BUNDLE_ID)?;
    match (tokens.as_slice(), bundle_id) {
        ([], None) if has_no_parameters(&obj) => Ok(None),
        ([], _) => Err(Failure::not_acceptable("one device token parameter is required")),
        ([_, _, ..], _) => Err(Failure::not_acceptable("too many parameters: send exactly one device token")),
        ([(APNS_TOKEN, _)], None) => {
            Err(Failure::not_acceptable("ios_app_bundle_id is required with ios_apns_device_token"))
        }
        ([(APNS_TOKEN, token)], Some(bundle)) => {
            Ok(Some(token_for(ChannelType::Apns, APNS_TOKEN, token, Some(bundle))))
        }
        ([(_, _)], Some(_)) => Err(Failure::not_acceptable("ios_app_bundle_id goes only with ios_apns_device_token")),
        ([(name, token)], None) => Ok(Some(token_for(ChannelType::Fcm, name, token, None))),
    }
}

fn has_no_parameters(obj: &Map<String, Value>) -> bool {
    obj.values().all(Value::is_null)
}

fn token_for(channel_type: ChannelType, field: &'static str, token: &str, bundle_id: Option<String>) -> DeviceToken {
    DeviceToken {
        route: DeviceRoute { channel_type, environment: None, kind: SubscriptionKind::Standard },
        token: token.to_string(),
        bundle_id,
        route_field: field,
        token_field: field,
    }
}
