//! `GET /metrics`: the Prometheus text exposition of `herald_core::metrics`. On the main listener
//! it needs the operator token as a bearer (401 otherwise; absent with the operator API); on
//! `metrics_listen`, a listener of its own for a private network, it needs nothing.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_core::ServiceError;
use herald_core::keys::ct_eq;

use super::AppState;
use super::error::ApiError;
use super::extract::bearer;

/// The exposition, with Prometheus' content type.
pub fn exposition() -> Response {
    let mut res = herald_core::metrics::global().render().into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

/// `GET /metrics` on the main listener: operator token required.
async fn guarded(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = app.admin_token.as_deref() else {
        return ApiError(ServiceError::not_found("route", "/metrics")).into_response();
    };
    let presented = bearer(&headers).unwrap_or_default();
    if !ct_eq(&herald_core::keys::hash(presented), &herald_core::keys::hash(expected)) {
        return ApiError(ServiceError::Unauthenticated(
            "send the operator token: Authorization: Bearer <admin_token>".into(),
        ))
        .into_response();
    }
    exposition()
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(guarded))
}

/// The router of `metrics_listen`: `/metrics`, no credential.
pub fn open_router() -> axum::Router {
    axum::Router::new().route("/metrics", get(|| async { exposition() })).fallback(|| async { StatusCode::NOT_FOUND })
}
