//! The doBoard surface (`seeds/000`): `GET` or `POST /{account_id}/push_subscribe` subscribes the
//! session's user's browser to Web Push on the account's default `web_push` channel.
//!
//! Parameters come from the query, a form or a JSON body (the body wins). The session is a
//! native one (`POST /v1/sessions`). Validation is the service layer's; this module only turns
//! its field errors into doBoard's `error_no`s, in the page's order.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_core::keys::lookup_prefix;
use herald_core::model::ChannelType;
use herald_core::service::Registration;
use herald_core::{FieldError, ServiceError};
use serde_json::{Map, Value, json};

use crate::http::AppState;
use crate::http::error::{classify, log_if_internal};

/// doBoard's numbered validation errors, in the order the page checks them: presence first,
/// then length. (field of the service's error, reason, error_no, message)
const NUMBERED: [(&str, &str, u16, &str); 6] = [
    ("settings.endpoint", "required", 8501, "endpoint is required"),
    ("settings.p256dh", "required", 8502, "key_p256dh is required"),
    ("settings.auth", "required", 8503, "key_auth is required"),
    ("settings.endpoint", "too_long", 8504, "endpoint is too long"),
    ("settings.p256dh", "too_long", 8505, "key_p256dh is too long"),
    ("settings.auth", "too_long", 8506, "key_auth is too long"),
];

/// Herald's additions where the page is silent (docs/compat.md): values that pass 8501-8506 but
/// are not a usable subscription, and an account without Web Push.
const INVALID: [(&str, u16, &str); 3] = [
    ("settings.endpoint", 8507, "endpoint is invalid"),
    ("settings.p256dh", 8508, "key_p256dh is invalid"),
    ("settings.auth", 8509, "key_auth is invalid"),
];
const NOT_CONFIGURED: (u16, &str) = (8510, "push notifications are not configured");

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/{account_id}/push_subscribe", get(push_subscribe).post(push_subscribe))
}

/// A doBoard failure, rendered in its `{"data": {...}}` envelope.
#[derive(Debug)]
enum Failure {
    /// HTTP 200 with `operation_status: FAILED` and an `error_no`.
    Numbered(u16, String),
    /// Another HTTP status with just a message (401 `Unauthorized`, …).
    Status(StatusCode),
    /// 429, with the seconds to wait for `Retry-After`.
    Limited(u64),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, data) = match self {
            Failure::Numbered(no, message) => {
                (StatusCode::OK, json!({"operation_status": "FAILED", "error_no": no, "error_message": message}))
            }
            Failure::Status(status) => {
                let message = status.canonical_reason().unwrap_or("Error");
                (status, json!({"operation_status": "FAILED", "error_message": message}))
            }
            Failure::Limited(retry_after) => {
                let data = json!({"operation_status": "FAILED", "error_message": "Too Many Requests"});
                let headers = [(header::RETRY_AFTER, retry_after.to_string())];
                return (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(json!({ "data": data }))).into_response();
            }
        };
        (status, axum::Json(json!({ "data": data }))).into_response()
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        log_if_internal(&e);
        match e {
            ServiceError::Validation(fields) => numbered(&fields),
            ServiceError::Unauthenticated(_) => Failure::Status(StatusCode::UNAUTHORIZED),
            other => match classify(&other) {
                (_, StatusCode::TOO_MANY_REQUESTS, details) => {
                    Failure::Limited(details["retry_after"].as_u64().unwrap_or(1))
                }
                (_, status, _) => Failure::Status(status),
            },
        }
    }
}

/// The first of the page's numbered errors present, else Herald's additions.
fn numbered(fields: &[FieldError]) -> Failure {
    let has = |field: &str, reason: &str| fields.iter().any(|f| f.field == field && f.reason == reason);
    if let Some((_, _, no, message)) = NUMBERED.iter().find(|(f, r, _, _)| has(f, r)) {
        return Failure::Numbered(*no, (*message).to_string());
    }
    if let Some(f) = fields.iter().find(|f| f.reason == "not_configured") {
        return Failure::Numbered(NOT_CONFIGURED.0, format!("{}: {}", NOT_CONFIGURED.1, f.message));
    }
    let first = fields.first().map(|f| f.field.as_str()).unwrap_or_default();
    let (_, no, message) = INVALID.iter().find(|(f, _, _)| *f == first).unwrap_or(&INVALID[0]);
    Failure::Numbered(*no, (*message).to_string())
}

/// `GET|POST /{account_id}/push_subscribe`
#[tracing::instrument(skip_all, fields(account = %account_id))]
async fn push_subscribe(
    State(app): State<AppState>,
    Path(account_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match subscribe(&app, &account_id, query.as_deref(), &headers, &body).await {
        Ok(id) => {
            let data = json!({"push_subscription_id": id, "operation_status": "SUCCESS"});
            axum::Json(json!({ "data": data })).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

async fn subscribe(
    app: &AppState,
    account_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<i64, Failure> {
    let params = params(query, headers, body).ok_or(Failure::Status(StatusCode::BAD_REQUEST))?;
    let session = params.get("session_id").and_then(Value::as_str).filter(|s| !s.is_empty());
    let session = session.ok_or(Failure::Status(StatusCode::UNAUTHORIZED))?;
    let client = app.svc.authenticate_session(session).await?;
    // The account in the path must be the session's: anything else is the same 401.
    if account_id.parse::<i64>().ok() != Some(client.account.id) {
        return Err(Failure::Status(StatusCode::UNAUTHORIZED));
    }
    app.limit(&client.account, &format!("session:{}", lookup_prefix(session)))?;
    let channel = app.svc.default_channel(client.account.id, ChannelType::WebPush, "channel").await?;
    let field = |name: &str| params.get(name).cloned().unwrap_or(Value::Null);
    let reg = Registration {
        channel_id: Some(channel.id),
        settings: json!({"endpoint": field("endpoint"), "p256dh": field("key_p256dh"), "auth": field("key_auth")}),
        ..Default::default()
    };
    let up = app.svc.register_subscription(client.account.id, &client.external_id, reg).await?;
    Ok(up.value.id)
}

/// The request's parameters: the query, overridden by a form or JSON body. `None` when the body
/// is neither.
fn params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Option<Map<String, Value>> {
    let mut map = Map::new();
    add_form(query.unwrap_or_default().as_bytes(), &mut map);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(map);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_json = media.ends_with("json") || (media.is_empty() && body.trim_ascii_start().starts_with(b"{"));
    if media == "multipart/form-data" {
        // What a browser's `FormData` sends.
        for (k, v) in multipart_fields(content_type, body)? {
            map.insert(k, Value::String(v));
        }
        return Some(map);
    }
    if !is_json {
        // A form, as declared or assumed; anything else is unreadable, not "unauthenticated".
        if !(media.is_empty() || media == "application/x-www-form-urlencoded") || std::str::from_utf8(body).is_err() {
            return None;
        }
        add_form(body, &mut map);
        return Some(map);
    }
    let Ok(Value::Object(json)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    for (k, v) in json {
        // Scalars arrive as text in a query or form; JSON clients may send numbers.
        let v = match v {
            Value::Null => continue,
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => other,
        };
        map.insert(k, v);
    }
    Some(map)
}

/// The text fields of a `multipart/form-data` body (RFC 7578); `None` when it is malformed.
fn multipart_fields(content_type: &str, body: &[u8]) -> Option<Vec<(String, String)>> {
    let boundary = content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary").then(|| v.trim_matches('"').to_string())
    })?;
    if boundary.is_empty() || boundary.len() > 200 {
        return None;
    }
    let body = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    let mut parts = body.split(delimiter.as_str());
    parts.next()?; // the preamble
    let mut fields = Vec::new();
    for part in parts {
        if part.starts_with("--") {
            return Some(fields); // the closing delimiter
        }
        let part = part.strip_prefix("\r\n")?;
        let (head, value) = part.split_once("\r\n\r\n")?;
        let name = head.lines().find_map(|line| {
            let (h, v) = line.split_once(':')?;
            if !h.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').find_map(|p| p.trim().strip_prefix("name=").map(|n| n.trim_matches('"').to_string()))
        })?;
        fields.push((name, value.strip_suffix("\r\n").unwrap_or(value).to_string()));
    }
    None // no closing delimiter: truncated
}

fn add_form(raw: &[u8], map: &mut Map<String, Value>) {
    for (k, v) in url::form_urlencoded::parse(raw) {
        map.insert(k.into_owned(), Value::String(v.into_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no(fields: &[(&str, &'static str)]) -> u16 {
        let fields: Vec<FieldError> = fields.iter().map(|(f, r)| FieldError::new(*f, r, "m")).collect();
        match numbered(&fields) {
            Failure::Numbered(no, _) => no,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn presence_comes_before_length_and_validity() {
        assert_eq!(no(&[("settings.endpoint", "too_long"), ("settings.auth", "required")]), 8503);
        assert_eq!(no(&[("settings.p256dh", "too_long"), ("settings.endpoint", "too_long")]), 8504);
        assert_eq!(no(&[("settings.p256dh", "invalid"), ("settings.auth", "too_long")]), 8506);
        assert_eq!(no(&[("settings.p256dh", "invalid")]), 8508);
        assert_eq!(no(&[("channel", "not_configured")]), 8510);
    }

    #[test]
    fn json_bodies_override_the_query() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let p = params(Some("endpoint=q&session_id=s"), &headers, br#"{"endpoint": "b", "key_auth": 5}"#).unwrap();
        assert_eq!(
            (p["endpoint"].as_str(), p["session_id"].as_str(), p["key_auth"].as_str()),
            (Some("b"), Some("s"), Some("5"))
        );
        assert!(params(None, &headers, b"{not json").is_none());
        let p = params(None, &HeaderMap::new(), b"endpoint=https%3A%2F%2Fx&key_auth=a").unwrap();
        assert_eq!(p["endpoint"], "https://x");
    }

    #[test]
    fn multipart_bodies_are_forms_and_garbage_is_unreadable() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "multipart/form-data; boundary=----x".parse().unwrap());
        let body = "------x\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\nses_1\r\n\
                    ------x\r\nContent-Disposition: form-data; name=\"endpoint\"\r\n\r\nhttps://e/1\r\n------x--\r\n";
        let p = params(Some("endpoint=q"), &headers, body.as_bytes()).unwrap();
        assert_eq!((p["session_id"].as_str(), p["endpoint"].as_str()), (Some("ses_1"), Some("https://e/1")));
        assert!(params(None, &headers, b"------x\r\nno headers").is_none());
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(params(None, &text, b"session_id=s").is_none());
        assert!(params(None, &HeaderMap::new(), b"session_id=\xff").is_none());
    }
}
