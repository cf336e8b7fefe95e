//! Liveness, readiness, the OpenAPI document and the fallback.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/openapi.json", get(openapi))
}

/// Alive: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the database answers and the schema is in place.
async fn readyz(State(app): State<AppState>) -> Response {
    match app.svc.store().ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": "database"})))
                .into_response()
        }
    }
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], super::openapi::document()).into_response()
}

pub(super) async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    let surface = super::edge::Surface::of(uri.path());
    super::edge::render(surface, &method, &uri, super::edge::Refusal::NotFound)
}
