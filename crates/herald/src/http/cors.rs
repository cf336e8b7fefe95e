//! CORS for the client surfaces, the ones a web app's own pages call from the browser:
//! `/v1/me/*`, `/v1/pair/*`, `/v1/receipts`, `/v1/renewals`, `/compat/doboard`,
//! `/compat/notiflows`, `/compat/brightpattern`, and the SDK files under `/sdk/`.
//!
//! A preflight names no account, so it is answered for any origin (204, the methods, the
//! requested headers, `Access-Control-Max-Age`). The account's `allowed_origins` is enforced on
//! the actual request, once its credential names the account ([`check`], called where every
//! surface rate-limits its credential): an origin it does not list is 403 `forbidden`
//! (`details.reason: "origin_not_allowed"`) and the answer carries no `Access-Control-Allow-Origin`,
//! so the page cannot read it. Calls identified by a cookie (Bright Pattern's WebChat) need an
//! origin the account lists by name ([`check_credentialed`]) and get
//! `Access-Control-Allow-Credentials`. Backend and operator routes never send CORS headers: a
//! secret key never belongs in a browser.

use std::cell::Cell;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_core::ServiceError;
use herald_core::model::Account;

/// How long browsers may cache a preflight.
const MAX_AGE_SECS: &str = "600";
const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Response headers a page may read besides the simple ones.
const EXPOSE: &str = "x-request-id, retry-after, ratelimit, ratelimit-policy, location";

/// The origin of the request being served, and what the handlers decided about it.
struct Context {
    origin: String,
    refused: Cell<bool>,
    credentialed: Cell<bool>,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Which client surface a path belongs to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Credentials in headers: any origin the account allows.
    Client,
    /// Bright Pattern: may be identified by a cookie.
    Cookies,
    /// The SDK files: public, any origin.
    Public,
}

fn kind(path: &str) -> Option<Kind> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/sdk") {
        return Some(Kind::Public);
    }
    if under("/compat/brightpattern") {
        return Some(Kind::Cookies);
    }
    let client = ["/v1/me", "/v1/pair", "/v1/receipts", "/v1/renewals", "/compat/doboard", "/compat/notiflows"];
    client.iter().any(|p| under(p)).then_some(Kind::Client)
}

/// Refuses the request when its page's origin is not one `account` allows. Outside a
/// cross-origin request to a client surface it allows everything.
pub fn check(account: &Account) -> Result<(), ServiceError> {
    CONTEXT
        .try_with(|c| {
            if account.policy.allows_origin(&c.origin) {
                Ok(())
            } else {
                c.refused.set(true);
                Err(ServiceError::origin_not_allowed(&c.origin))
            }
        })
        .unwrap_or(Ok(()))
}

/// Like [`check`] for a call identified by a cookie: the origin must be listed by name, and
/// the answer then allows credentials.
pub fn check_credentialed(account: &Account) -> Result<(), ServiceError> {
    CONTEXT
        .try_with(|c| {
            if account.policy.lists_origin(&c.origin) {
                c.credentialed.set(true);
                Ok(())
            } else {
                c.refused.set(true);
                Err(ServiceError::origin_not_allowed(&c.origin))
            }
        })
        .unwrap_or(Ok(()))
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    let o = headers.get(header::ORIGIN)?.to_str().ok()?;
    // "null" (sandboxed frames, file: pages) is no origin an account can list.
    (o != "null" && !o.is_empty()).then(|| o.to_string())
}

/// Middleware: answers preflights and adds the headers to client surfaces' answers.
pub async fn layer(req: Request, next: Next) -> Response {
    let Some(kind) = kind(req.uri().path()) else { return next.run(req).await };
    let Some(origin) = origin_of(req.headers()) else { return next.run(req).await };
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return preflight(kind, &origin, req.headers());
    }
    if kind == Kind::Public {
        let mut res = next.run(req).await;
        res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        return res;
    }
    let context = Context { origin: origin.clone(), refused: Cell::new(false), credentialed: Cell::new(false) };
    let (mut res, refused, credentialed) = CONTEXT
        .scope(context, async move {
            let res = next.run(req).await;
            let (refused, credentialed) = CONTEXT.with(|c| (c.refused.get(), c.credentialed.get()));
            (res, refused, credentialed)
        })
        .await;
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if refused {
        return res;
    }
    if let Ok(value) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE));
        if credentialed {
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }
    res
}

fn preflight(kind: Kind, origin: &str, headers: &HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    let allow_origin = if kind == Kind::Public {
        HeaderValue::from_static("*")
    } else {
        HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("null"))
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
    // The headers the page asked for: every client credential rides in a header of its own
    // (Authorization, x-herald-user-token, x-notiflows-api-key, …).
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 1024 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b)));
    if let Some(requested) = requested.and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_SECS));
    if kind == Kind::Cookies {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_surfaces_are_cross_origin() {
        assert_eq!(kind("/v1/me/subscriptions"), Some(Kind::Client));
        assert_eq!(kind("/v1/me"), Some(Kind::Client));
        assert_eq!(kind("/v1/pair/abc"), Some(Kind::Client));
        assert_eq!(kind("/v1/receipts"), Some(Kind::Client));
        assert_eq!(kind("/compat/notiflows/user/v1/channels/x/subscriptions"), Some(Kind::Client));
        assert_eq!(kind("/compat/brightpattern/clientweb/api/v1/chats"), Some(Kind::Cookies));
        assert_eq!(kind("/sdk/herald.js"), Some(Kind::Public));
        for backend in [
            "/v1/notifications",
            "/v1/meh",
            "/admin/v1/accounts",
            "/v1/subscriptions/1",
            "/compat/discord/users/@me/devices",
            "/compat/bnotify/channels/x/subscriptions",
        ] {
            assert_eq!(kind(backend), None, "{backend}");
        }
    }
}
