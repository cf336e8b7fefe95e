//! The five compatible surfaces (DESIGN.md section 6), each mounted under `/compat/<api>` so a
//! client written for the vendor's API only changes its base URL. Every surface is a
//! translator: it parses its API's request, calls the same service functions the native API
//! calls, and renders its API's response and error format. No business rule lives here.

mod bnotify;
mod brightpattern;
mod discord;
mod doboard;
mod notiflows;

use axum::Router;

use crate::http::AppState;

/// All surfaces, nested under their prefixes.
pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/compat/doboard", doboard::router())
        .nest("/compat/notiflows", notiflows::router())
        .nest("/compat/brightpattern", brightpattern::router())
        .nest("/compat/discord", discord::router())
        .nest("/compat/bnotify", bnotify::router())
}
