//! The edge every request passes before any surface sees it, and every answer passes after.
//!
//! Before: the path, the query and the header values are decoded and refused when they are not
//! UTF-8 or hold control characters no field has a use for (a NUL reaches PostgreSQL as an
//! error, never as data); the body is read up to `max_body_bytes` and refused when it is larger
//! or smuggles a NUL (a raw byte, a JSON `\u0000` escape, or a form's `%00`). After: an error the
//! framework answered itself (a method the route does not have, an extractor's plain-text
//! rejection, a caught panic) is rendered again in the format of the surface it belongs to.
//! So no surface can differ in how it treats hostile input, and nothing answers plain text.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth_guard::{self, AuthGuard};
use super::limits::{Decision, Policy};

/// The API a path belongs to; each renders errors its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/v1`, `/admin/v1`, the pages and everything else: Herald's error object.
    Native,
    Doboard,
    Notiflows,
    BrightPattern,
    Discord,
    Bnotify,
}

impl Surface {
    /// The label metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Native => "native",
            Surface::Doboard => "doboard",
            Surface::Notiflows => "notiflows",
            Surface::BrightPattern => "brightpattern",
            Surface::Discord => "discord",
            Surface::Bnotify => "bnotify",
        }
    }

    /// The surface of a request path.
    pub fn of(path: &str) -> Surface {
        let Some(rest) = path.strip_prefix("/compat/") else { return Surface::Native };
        match rest.split('/').next().unwrap_or_default() {
            "doboard" => Surface::Doboard,
            "notiflows" => Surface::Notiflows,
            "brightpattern" => Surface::BrightPattern,
            "discord" => Surface::Discord,
            "bnotify" => Surface::Bnotify,
            _ => Surface::Native,
        }
    }
}

/// Why the edge (or the framework) refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A path segment that is not UTF-8 once decoded, or holds control characters.
    Path(String),
    /// A query parameter likewise.
    Query(String),
    /// A header value with control characters; the header's name.
    Header(String),
    /// A body that cannot be read as the surface's input (NUL, unreadable).
    Body(String),
    /// A body over the configured limit.
    TooLarge(usize),
    /// No such route.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// A media type the route does not take.
    UnsupportedMediaType,
    /// Anything else the framework answered with this status (a caught panic is a 500).
    Status(StatusCode),
    /// Too many failed authentications from this address or with this key: seconds to wait.
    AuthFailures { limit: u32, retry_after: u64 },
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Path(_) | Refusal::Query(_) | Refusal::Header(_) | Refusal::Body(_) => StatusCode::BAD_REQUEST,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Status(s) => *s,
            Refusal::AuthFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Path(m) | Refusal::Query(m) | Refusal::Body(m) => m.clone(),
            Refusal::Header(name) => format!("header {name} must not contain control characters"),
            Refusal::TooLarge(limit) => format!("request body is larger than {limit} bytes"),
            Refusal::NotFound => "no such route".into(),
            Refusal::MethodNotAllowed => "method not allowed on this route".into(),
            Refusal::UnsupportedMediaType => "unsupported media type".into(),
            Refusal::Status(s) if s.is_server_error() => "internal server error".into(),
            Refusal::Status(s) => s.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
            Refusal::AuthFailures { .. } => "too many failed authentications; retry later".into(),
        }
    }
}

/// What the edge needs: the body limit and the failed-authentication budgets.
pub struct Edge {
    pub max_body_bytes: usize,
    pub auth_failures_per_minute: u32,
    pub guard: AuthGuard,
}

impl Edge {
    /// The edge for a configuration's limits.
    pub fn new(max_body_bytes: usize, auth_failures_per_minute: u32) -> Edge {
        Edge { max_body_bytes, auth_failures_per_minute, guard: AuthGuard::new(auth_failures_per_minute) }
    }
}

/// Middleware: the checks before, the re-rendering after (as the module says), and the request
/// metrics (by surface, route template and status: bounded labels, never a path with ids).
pub async fn layer(edge: Arc<Edge>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let surface = Surface::of(req.uri().path());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let res = checked(edge, req, next).await;
    let m = herald_core::metrics::global();
    let status = res.status();
    m.inc(
        "herald_http_requests_total",
        &[("surface", surface.as_str()), ("route", &route), ("status", status.as_str())],
    );
    m.observe(
        "herald_http_request_duration_seconds",
        &[("surface", surface.as_str()), ("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        m.inc("herald_rate_limited_total", &[("surface", surface.as_str())]);
    }
    res
}

async fn checked(edge: Arc<Edge>, req: Request, next: Next) -> Response {
    let max_body_bytes = edge.max_body_bytes;
    let surface = Surface::of(req.uri().path());
    let (method, uri) = (req.method().clone(), req.uri().clone());
    if let Err(refusal) = check_uri(&uri).and_then(|()| check_headers(req.headers())) {
        return render(surface, &method, &uri, refusal);
    }
    // Refused before any handler (and any signature check) runs.
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let guard_keys = auth_guard::keys(addr, req.headers());
    if let Some(retry_after) = edge.guard.blocked(&guard_keys) {
        let refusal = Refusal::AuthFailures { limit: edge.auth_failures_per_minute, retry_after };
        return render(surface, &method, &uri, refusal);
    }
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return render(surface, &method, &uri, Refusal::TooLarge(max_body_bytes));
    }
    let bytes = match axum::body::to_bytes(body, max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return render(surface, &method, &uri, Refusal::TooLarge(max_body_bytes)),
    };
    if let Err(refusal) = check_body(&parts.headers, &bytes) {
        return render(surface, &method, &uri, refusal);
    }
    let mut res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    // Every surface's 503 (the database out of reach) tells clients when to come back.
    if res.status() == StatusCode::SERVICE_UNAVAILABLE && !res.headers().contains_key(header::RETRY_AFTER) {
        res.headers_mut().insert(header::RETRY_AFTER, super::error::UNAVAILABLE_RETRY_SECS.into());
    }
    let bad_credentials = res.status() == StatusCode::UNAUTHORIZED
        || (surface == Surface::BrightPattern && res.status() == StatusCode::FORBIDDEN);
    if bad_credentials {
        edge.guard.failed(&guard_keys);
    }
    if !is_framework_answer(&res) {
        return res;
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let refusal = match res.status() {
        StatusCode::NOT_FOUND => Refusal::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Refusal::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge(max_body_bytes),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Refusal::UnsupportedMediaType,
        // Extractors answer 400 for paths and queries they cannot decode, 422 for bodies.
        StatusCode::BAD_REQUEST => {
            let text = body_text(res).await;
            if text.contains("query") { Refusal::Query(text) } else { Refusal::Path(text) }
        }
        StatusCode::UNPROCESSABLE_ENTITY => Refusal::Body(body_text(res).await),
        other => Refusal::Status(other),
    };
    let mut answer = render(surface, &method, &uri, refusal);
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

/// An error the framework produced rather than a surface: plain text or no body at all. Every
/// surface answers its own errors as JSON, and the pages as HTML.
fn is_framework_answer(res: &Response) -> bool {
    if res.status().as_u16() < 400 {
        return false;
    }
    match res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(ct) => ct.starts_with("text/plain"),
    }
}

async fn body_text(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 4096).await.unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Control characters have no use in any path, query or header value Herald reads.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn check_uri(uri: &Uri) -> Result<(), Refusal> {
    for segment in uri.path().split('/') {
        let decoded: Vec<u8> = percent_decode(segment.as_bytes(), false);
        match std::str::from_utf8(&decoded) {
            Ok(s) if !has_control(s) => {}
            Ok(_) => return Err(Refusal::Path("a path segment holds control characters".into())),
            Err(_) => return Err(Refusal::Path("a path segment is not valid UTF-8".into())),
        }
    }
    for pair in uri.query().unwrap_or_default().split('&') {
        let decoded = percent_decode(pair.as_bytes(), true);
        match std::str::from_utf8(&decoded) {
            Ok(s) if !has_control(s) => {}
            Ok(_) => return Err(Refusal::Query("a query parameter holds control characters".into())),
            Err(_) => return Err(Refusal::Query("a query parameter is not valid UTF-8".into())),
        }
    }
    Ok(())
}

fn check_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    for (name, value) in headers {
        // Tabs are legal inside header values; no other control character is.
        if value.as_bytes().iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Refusal::Header(name.as_str().to_string()));
        }
    }
    Ok(())
}

fn check_body(headers: &HeaderMap, body: &Bytes) -> Result<(), Refusal> {
    if body.contains(&0) || memfind(body, b"\\u0000") {
        return Err(Refusal::Body("the request body contains a NUL character".into()));
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("multipart/"));
    if form && memfind(body, b"%00") {
        return Err(Refusal::Body("the request body contains a NUL character".into()));
    }
    Ok(())
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Percent-decodes bytes (`+` as space in queries); invalid escapes stay as they are.
fn percent_decode(input: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A refusal in the format of `surface` (docs/compat.md decides each compatible API's).
pub fn render(surface: Surface, method: &Method, uri: &Uri, refusal: Refusal) -> Response {
    if let Refusal::AuthFailures { limit, retry_after } = refusal {
        return too_many_failures(surface, limit, retry_after);
    }
    let status = refusal.status();
    let message = refusal.message();
    match surface {
        Surface::Native | Surface::Notiflows => native(uri, &refusal, status, &message),
        Surface::Doboard => {
            // An unreadable account id or session is doBoard's 401; the rest its envelope.
            let status = match refusal {
                Refusal::Path(_) | Refusal::Header(_) => StatusCode::UNAUTHORIZED,
                _ => status,
            };
            let text = status.canonical_reason().unwrap_or("Error");
            let body = json!({"data": {"operation_status": "FAILED", "error_message": text}});
            (status, axum::Json(body)).into_response()
        }
        Surface::BrightPattern => {
            // The page documents 403 (credentials, chats) and 406 (parameters) only.
            let (status, text) = match refusal {
                Refusal::Path(_) | Refusal::Header(_) => (StatusCode::FORBIDDEN, "Forbidden".to_string()),
                Refusal::Query(_) | Refusal::Body(_) | Refusal::TooLarge(_) | Refusal::UnsupportedMediaType => {
                    (StatusCode::NOT_ACCEPTABLE, format!("Not acceptable: {message}"))
                }
                _ => (status, status.canonical_reason().unwrap_or("Error").to_string()),
            };
            (status, axum::Json(json!({"error_code": status.as_u16(), "error_message": text}))).into_response()
        }
        Surface::Discord => {
            let body = match refusal {
                Refusal::Header(_) => {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "401: Unauthorized", "code": 0})))
                        .into_response();
                }
                Refusal::TooLarge(_) => json!({"message": "Request entity too large", "code": 40005}),
                Refusal::Path(_) | Refusal::Query(_) | Refusal::Body(_) | Refusal::UnsupportedMediaType => json!({
                    "code": 50035,
                    "message": "Invalid Form Body",
                    "errors": {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]},
                }),
                _ => {
                    json!({"message": format!("{}: {}", status.as_u16(), status.canonical_reason().unwrap_or("Error")), "code": 0})
                }
            };
            let status = if matches!(body.get("code"), Some(Value::Number(n)) if n.as_u64() == Some(50035)) {
                StatusCode::BAD_REQUEST
            } else {
                status
            };
            (status, axum::Json(body)).into_response()
        }
        Surface::Bnotify => {
            let body = match refusal {
                Refusal::Header(_) => {
                    let body =
                        json!({"statusCode": 401, "message": "Channel api key is no valid.", "error": "Unauthorized"});
                    return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
                }
                // NestJS answers an unknown route and an unknown method alike.
                Refusal::NotFound | Refusal::MethodNotAllowed => {
                    let body = json!({"statusCode": 404, "message": format!("Cannot {method} {}", uri.path()), "error": "Not Found"});
                    return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
                }
                Refusal::TooLarge(_) => {
                    json!({"statusCode": 413, "message": "request entity too large", "error": "Payload Too Large"})
                }
                Refusal::Status(s) if s.is_server_error() => {
                    json!({"statusCode": s.as_u16(), "message": "Internal server error"})
                }
                _ => {
                    json!({"statusCode": status.as_u16(), "message": message, "error": status.canonical_reason().unwrap_or("Error")})
                }
            };
            (status, axum::Json(body)).into_response()
        }
    }
}

/// Herald's own error object for a refusal, with a precise code.
fn native(uri: &Uri, refusal: &Refusal, status: StatusCode, message: &str) -> Response {
    let (code, details) = match refusal {
        Refusal::Path(_) => ("bad_request", json!({"reason": "invalid_param", "param": "path"})),
        Refusal::Query(_) => ("bad_request", json!({"reason": "invalid_param", "param": "query"})),
        Refusal::Header(name) => ("bad_request", json!({"reason": "invalid_header", "param": name})),
        Refusal::Body(_) => ("bad_request", json!({"reason": "invalid_body"})),
        Refusal::TooLarge(limit) => ("payload_too_large", json!({"limit": limit})),
        Refusal::NotFound => ("not_found", json!({"resource": "route", "id": uri.path()})),
        Refusal::MethodNotAllowed => ("method_not_allowed", json!({})),
        Refusal::UnsupportedMediaType => ("unsupported_media_type", json!({})),
        Refusal::Status(s) if s.is_server_error() => ("internal_error", json!({})),
        Refusal::Status(_) => ("bad_request", json!({})),
        Refusal::AuthFailures { .. } => ("rate_limited", json!({})),
    };
    super::error::error_response(code, status, message, details)
}

/// 429 for a spent failed-authentication budget, in the surface's own rate-limit answer.
fn too_many_failures(surface: Surface, limit: u32, retry_after: u64) -> Response {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let body = match surface {
        Surface::Native | Surface::Notiflows => {
            let details =
                json!({"limit": limit, "window": "60s", "retry_after": retry_after, "reason": "auth_failures"});
            let mut res = super::error::error_response(
                "rate_limited",
                status,
                "too many failed authentications; retry later",
                details,
            );
            res.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
            return res;
        }
        Surface::Doboard => json!({"data": {"operation_status": "FAILED", "error_message": "Too Many Requests"}}),
        Surface::BrightPattern => json!({"error_code": 429, "error_message": "Too Many Requests"}),
        Surface::Discord => {
            json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false})
        }
        Surface::Bnotify => json!({"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}),
    };
    let decision = Decision::Limited { policy: Policy::per_minute(limit), retry_after_secs: retry_after };
    (status, decision.headers(), axum::Json(body)).into_response()
}
