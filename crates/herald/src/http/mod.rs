//! The HTTP surface: routes, middleware, and the shared state handlers see.

pub mod auth_guard;
pub mod cors;
pub mod edge;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod request_id;
pub mod sdk;
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
    /// Per-credential request budgets of this node.
    pub limits: Arc<limits::RateLimits>,
    /// Requests per minute per credential when the account sets none.
    pub default_rate_per_minute: u32,
    /// This process in the cluster: budgets are shared by the live nodes.
    pub node: Arc<herald_core::cluster::Node>,
}

impl AppState {
    /// Counts a request of `credential` against its account's budget.
    pub fn limit(
        &self,
        account: &herald_core::model::Account,
        credential: &str,
    ) -> Result<(), herald_core::ServiceError> {
        // Every surface comes here once its credential names the account: the one place the
        // account's allowed origins are enforced on cross-origin calls.
        cors::check(account)?;
        let per_minute =
            account.rate_limit_per_minute.map_or(self.default_rate_per_minute, |l| l.clamp(1, u32::MAX as i64) as u32);
        // A budget holds across the cluster: each of N live nodes enforces 1/N of it (requests
        // behind a load balancer spread evenly; a node alone has all of it).
        let per_minute = (u64::from(per_minute) / self.node.live_nodes()).max(1) as u32;
        match self.limits.check(credential, limits::Policy::per_minute(per_minute)) {
            limits::Decision::Allowed { .. } => Ok(()),
            limits::Decision::Limited { policy, retry_after_secs } => Err(herald_core::ServiceError::RateLimited {
                limit: policy.limit,
                window_secs: policy.window_secs,
                retry_after: retry_after_secs,
            }),
        }
    }
}

/// One page of a list, as every `/v1` list endpoint answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Builds the whole router.
pub fn router(state: AppState, edge: edge::Edge) -> Router {
    let public_url = state.public_url.clone();
    let max_body_bytes = edge.max_body_bytes;
    let edge = Arc::new(edge);
    Router::new()
        .merge(system::router())
        .merge(v1::router())
        .merge(pages::router())
        .merge(sdk::router())
        .merge(metrics::router())
        .merge(crate::compat::router())
        .fallback(system::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(move |req, next| edge::layer(edge.clone(), req, next)))
        .layer(axum::middleware::from_fn(cors::layer))
        .layer(axum::middleware::from_fn(move |req, next| request_id::layer(public_url.clone(), req, next)))
}
