//! Hosted pages: the page behind every pairing deep link (`GET /qrcode/{code}`), which shows what
//! is being subscribed to and, for a Web Push channel, subscribes the browser and redeems the
//! code with the browser SDK (`/sdk/herald.js`, pairing mode); the phone how-to (`GET /mobile`);
//! Herald's service worker (`GET /sw.js`, the SDK's `herald-sw.js`) and the pages' static
//! assets. Everything is served by Herald itself: no CDN, no external resource.

pub mod qr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_core::ServiceError;
use herald_core::clock::rfc3339;
use herald_core::model::ChannelType;
use herald_core::service::pairing::PairingInfo;

use super::AppState;
use super::error::log_if_internal;

const LAYOUT: &str = include_str!("layout.html");
const PAIR: &str = include_str!("pair.html");
const ACTION_WEB_PUSH: &str = include_str!("action_web_push.html");
const ACTION_APP: &str = include_str!("action_app.html");
const PROBLEM: &str = include_str!("problem.html");
const MOBILE: &str = include_str!("mobile.html");

/// Pages load only what Herald serves; the pairing code in the URL never leaves in a Referer.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The hosted page a pairing code's QR code and deep link open.
pub fn deep_link(public_url: &str, code: &str) -> String {
    format!("{}/qrcode/{code}", public_url.trim_end_matches('/'))
}

/// The page explaining how to subscribe on a phone.
pub fn app_url(public_url: &str) -> String {
    format!("{}/mobile", public_url.trim_end_matches('/'))
}

/// The QR code of a pairing code's deep link, as a GIF data URI.
pub fn pairing_qr(public_url: &str, code: &str) -> Result<String, ServiceError> {
    qr::gif_data_uri(&deep_link(public_url, code)).map_err(ServiceError::Internal)
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` placeholders, in one pass (a value is never itself scanned for
/// placeholders), with values the caller has already made safe. Unknown names stay as they are.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| vars.iter().find(|(k, _)| *k == &after[..end]).map(|(_, v)| (end, v))) {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = fill(LAYOUT, &[("title", &esc(title)), ("body", body)]);
    let mut res = (status, page).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

fn problem(status: StatusCode, heading: &str, message: &str, hint: &str) -> Response {
    let body = fill(PROBLEM, &[("heading", &esc(heading)), ("message", &esc(message)), ("hint", &esc(hint))]);
    html(status, heading, &body)
}

/// `2026-01-31 09:28 UTC`: the RFC 3339 time cut to the minute, for people.
fn readable_time(ms: i64) -> String {
    let t = rfc3339(ms);
    format!("{} UTC", t.get(..16).unwrap_or(&t).replacen('T', " ", 1))
}

fn pairing_page(code: &str, info: &PairingInfo) -> Response {
    let channel = &info.channel;
    let (kind, action) = match channel.channel_type {
        ChannelType::WebPush => ("browser notifications", ACTION_WEB_PUSH.to_string()),
        ChannelType::Apns => ("iPhone / iPad app", fill(ACTION_APP, &[("channel", &esc(&channel.name))])),
        ChannelType::Fcm => ("Android app", fill(ACTION_APP, &[("channel", &esc(&channel.name))])),
    };
    let body = fill(
        PAIR,
        &[
            ("code", &esc(code)),
            ("vapid", &esc(channel.vapid_public_key.as_deref().unwrap_or_default())),
            ("channel_id", &esc(&channel.id)),
            ("account", &esc(&info.account_name)),
            ("channel", &esc(&channel.name)),
            ("channel_kind", kind),
            ("user", &esc(&info.user)),
            ("expires", &esc(&rfc3339(info.expires_at))),
            ("expires_text", &esc(&readable_time(info.expires_at))),
            ("action", &action),
        ],
    );
    html(StatusCode::OK, &format!("Subscribe to {}", info.account_name), &body)
}

/// `GET /qrcode/{code}`: the pairing page, or a page saying why the code cannot be used.
async fn pair(State(app): State<AppState>, Path(code): Path<String>) -> Response {
    let ask = "Ask the service that gave you this code for a new one.";
    match app.svc.pairing_info(&code).await {
        Ok(info) => pairing_page(&code, &info),
        Err(ServiceError::NotFound { .. }) => {
            problem(StatusCode::NOT_FOUND, "Unknown code", "This subscribe link is not valid.", ask)
        }
        Err(ServiceError::Gone(reason)) => {
            problem(StatusCode::GONE, "This code can no longer be used", &format!("Sorry: {reason}."), ask)
        }
        Err(ServiceError::Forbidden { .. }) => problem(
            StatusCode::FORBIDDEN,
            "Subscriptions are paused",
            "The service behind this link cannot take subscriptions at the moment.",
            "Try again later.",
        ),
        Err(e) => {
            log_if_internal(&e);
            problem(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again in a moment.", "")
        }
    }
}

/// `GET /mobile`
async fn mobile() -> Response {
    html(StatusCode::OK, "Notifications on your phone", MOBILE)
}

/// `GET /sw.js`: the SDK's service worker (`sdk/herald-sw.js`, also at `/sdk/herald-sw.js`) at
/// the root, so the pairing page may register it for any scope of this origin.
async fn service_worker() -> Response {
    let mut res = asset("text/javascript; charset=utf-8", super::sdk::HERALD_SW_JS);
    // Browsers re-check the worker on navigation; a stale cached copy would delay fixes.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/qrcode/{code}", get(pair))
        .route("/mobile", get(mobile))
        .route("/sw.js", get(service_worker))
        .route("/pages/pair.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("pair.js")) }))
        .route("/pages/herald.css", get(|| async { asset("text/css; charset=utf-8", include_str!("herald.css")) }))
        .route(
            "/manifest.webmanifest",
            get(|| async { asset("application/manifest+json", include_str!("manifest.webmanifest")) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc(r#"<b a="1">'&'</b>"#), "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;");
        assert_eq!(fill("<p>{{a}}</p>{{a}}{{b}}", &[("a", "x{{b}}"), ("b", "y")]), "<p>x{{b}}</p>x{{b}}y");
        assert_eq!(fill("{{unknown}} {{", &[("a", "x")]), "{{unknown}} {{");
        assert_eq!(deep_link("https://h.example/", "abc"), "https://h.example/qrcode/abc");
        assert_eq!(app_url("https://h.example"), "https://h.example/mobile");
        assert_eq!(readable_time(1_700_000_000_000), "2023-11-14 22:13 UTC");
    }
}
