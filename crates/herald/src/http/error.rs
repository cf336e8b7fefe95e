//! The `/v1` and `/admin/v1` error body (DESIGN.md section 4), rendered from service errors.
//! Internal errors are logged with their whole source chain and answered as a bare 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::{ServiceError, StoreError};

/// Seconds a client is asked to wait while the database is unreachable.
pub const UNAVAILABLE_RETRY_SECS: u64 = 1;
use serde_json::{Value, json};

use super::request_id;

/// An error answered in Herald's native format.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

/// Result type of native handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The stable code, HTTP status and `details` object of a service error.
pub fn classify(e: &ServiceError) -> (&'static str, StatusCode, Value) {
    match e {
        ServiceError::BadRequest { reason, param, .. } => {
            ("bad_request", StatusCode::BAD_REQUEST, json!({"reason": reason, "param": param}))
        }
        ServiceError::Unauthenticated(_) => ("unauthenticated", StatusCode::UNAUTHORIZED, json!({})),
        ServiceError::Forbidden { required_scope, reason, .. } => {
            ("forbidden", StatusCode::FORBIDDEN, json!({"required_scope": required_scope, "reason": reason}))
        }
        ServiceError::NotFound { resource, id } => {
            ("not_found", StatusCode::NOT_FOUND, json!({"resource": resource, "id": id}))
        }
        ServiceError::Conflict { idempotency_key, current_status, .. } => (
            "conflict",
            StatusCode::CONFLICT,
            json!({"idempotency_key": idempotency_key, "current_status": current_status}),
        ),
        ServiceError::Validation(fields) => {
            ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY, json!({"fields": fields}))
        }
        ServiceError::Gone(_) => ("gone", StatusCode::GONE, json!({})),
        ServiceError::RateLimited { limit, window_secs, retry_after } => (
            "rate_limited",
            StatusCode::TOO_MANY_REQUESTS,
            json!({"limit": limit, "window": format!("{window_secs}s"), "retry_after": retry_after}),
        ),
        ServiceError::Store(StoreError::Unavailable(_)) => {
            ("unavailable", StatusCode::SERVICE_UNAVAILABLE, json!({"retry_after": UNAVAILABLE_RETRY_SECS}))
        }
        ServiceError::Store(_) | ServiceError::Internal(_) => {
            ("internal_error", StatusCode::INTERNAL_SERVER_ERROR, json!({}))
        }
    }
}

/// The public message of an error; internal details never leave the server.
pub fn public_message(e: &ServiceError) -> String {
    match e {
        ServiceError::Store(StoreError::Unavailable(_)) => "the database is unavailable; retry shortly".into(),
        ServiceError::Store(_) | ServiceError::Internal(_) => "internal server error".into(),
        ServiceError::Validation(fields) if fields.len() == 1 => fields[0].message.clone(),
        ServiceError::Validation(_) => "the request has invalid fields".into(),
        ServiceError::NotFound { resource, .. } => format!("{} not found", capitalise(resource)),
        other => other.to_string(),
    }
}

fn capitalise(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Logs an internal error with its whole source chain.
pub fn log_if_internal(e: &ServiceError) {
    if matches!(e, ServiceError::Store(_) | ServiceError::Internal(_)) {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "request failed");
    }
}

/// The native error body (DESIGN.md section 4) with the request's id.
pub fn error_response(code: &str, status: StatusCode, message: &str, details: Value) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "status": status.as_u16(),
        "request_id": request_id::current(),
        "type": format!("{}/docs/errors#{code}", request_id::public_url()),
        "details": details,
    }});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log_if_internal(&self.0);
        let (code, status, mut details) = classify(&self.0);
        if let Value::Object(map) = &mut details {
            map.retain(|_, v| !v.is_null());
        }
        let mut res = error_response(code, status, &public_message(&self.0), details);
        match self.0 {
            ServiceError::Unauthenticated(_) => {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ServiceError::Store(StoreError::Unavailable(_)) => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_SECS));
            }
            ServiceError::RateLimited { limit, window_secs, retry_after } => {
                let policy = crate::http::limits::Policy { limit, window_secs };
                let decision = crate::http::limits::Decision::Limited { policy, retry_after_secs: retry_after };
                res.headers_mut().extend(decision.headers());
            }
            _ => {}
        }
        res
    }
}
