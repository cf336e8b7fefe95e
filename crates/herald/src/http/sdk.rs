//! The browser SDK, served from the repository's `sdk/` folder without a build step: the source
//! is embedded at compile time and served as a classic script (`/sdk/herald.js`, defines
//! `window.Herald`), as an ES module (`/sdk/herald.mjs`), and the service worker
//! (`/sdk/herald-sw.js`). CORS headers come from `http/cors.rs` (`/sdk/*` is public).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// `GET /sdk/herald.js`: the SDK as a classic `<script>`.
pub const HERALD_JS: &str = concat!(
    "(function(){\n",
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/herald-core.js")),
    "\nwindow.Herald = Herald;\n})();\n"
);

/// `GET /sdk/herald.mjs`: the same SDK as an ES module.
pub const HERALD_MJS: &str = concat!(
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/herald-core.js")),
    "\nexport default Herald;\nexport { Herald, HeraldError };\n"
);

/// `GET /sdk/herald-sw.js`: the service worker, used as is or through `importScripts`.
pub const HERALD_SW_JS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/herald-sw.js"));

fn script(body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    // Revalidated on every load, so a Herald upgrade reaches pages and workers at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/sdk/herald.js", get(|| async { script(HERALD_JS) }))
        .route("/sdk/herald.mjs", get(|| async { script(HERALD_MJS) }))
        .route("/sdk/herald-sw.js", get(|| async { script(HERALD_SW_JS) }))
}
