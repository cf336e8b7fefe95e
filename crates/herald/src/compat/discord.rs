//! The discord surface (see ../shared/seeds and DESIGN.md section 6).

use axum::Router;

use crate::http::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
}
