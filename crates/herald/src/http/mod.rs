//! The HTTP surface: routes, middleware, and the shared state handlers see.

pub mod error;
pub mod extract;
pub mod openapi;
pub mod request_id;
mod system;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herald_core::Service;
use serde::Serialize;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub svc: Service,
    /// The operator token; `None` disables `/admin/v1`.
    pub admin_token: Option<Arc<str>>,
    pub public_url: Arc<str>,
}

/// One page of a list, as every `/v1` list endpoint answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Builds the whole router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let public_url = state.public_url.clone();
    Router::new()
        .merge(system::router())
        .merge(v1::router())
        .merge(crate::compat::router())
        .fallback(system::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(move |req, next| request_id::layer(public_url.clone(), req, next)))
}
