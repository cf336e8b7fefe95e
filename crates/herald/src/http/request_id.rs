//! Request ids: taken from a sane incoming `x-request-id` or minted (`req_…`), put on the
//! tracing span and the response, and kept in a task-local so error bodies can quote it.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static CONTEXT: (String, std::sync::Arc<str>);
}

/// The current request's id (empty outside a request).
pub fn current() -> String {
    CONTEXT.try_with(|c| c.0.clone()).unwrap_or_default()
}

/// The public URL, for links in error bodies.
pub fn public_url() -> String {
    CONTEXT.try_with(|c| c.1.to_string()).unwrap_or_default()
}

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The path as logged: segments that are credentials (session tokens in `DELETE
/// /v1/sessions/{id}`, pairing codes) are replaced, so secrets never reach the logs.
pub fn loggable_path(path: &str) -> String {
    const SECRET_PREFIXES: &[&str] = &["ses_", "sk_", "pk_", "ck_", "whsec_"];
    let mut redact_next = false;
    path.split('/')
        .map(|segment| {
            let secret = redact_next || SECRET_PREFIXES.iter().any(|p| segment.starts_with(p));
            redact_next = matches!(segment, "pair" | "qrcode");
            if secret && !segment.is_empty() { "<redacted>" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Middleware: assigns the id, traces the request, stamps the response.
pub async fn layer(public_url: std::sync::Arc<str>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{}", uuid::Uuid::new_v4().simple()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %loggable_path(req.uri().path()));
    let started = std::time::Instant::now();
    let mut res = CONTEXT.scope((id.clone(), public_url), next.run(req).instrument(span.clone())).await;
    span.in_scope(|| {
        tracing::info!(
            status = res.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "response"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn credentials_in_paths_are_redacted() {
        assert_eq!(loggable_path("/v1/sessions/ses_abc"), "/v1/sessions/<redacted>");
        assert_eq!(loggable_path("/v1/pair/Zx81q"), "/v1/pair/<redacted>");
        assert_eq!(loggable_path("/qrcode/Zx81q"), "/qrcode/<redacted>");
        assert_eq!(loggable_path("/v1/subscriptions/42"), "/v1/subscriptions/42");
        assert_eq!(loggable_path("/"), "/");
    }
}
