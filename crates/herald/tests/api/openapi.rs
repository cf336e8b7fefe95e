//! The committed `openapi.json` must be the document the code generates.
//! Regenerate with `HERALD_UPDATE_OPENAPI=1 ./scripts/test openapi` or `herald openapi > openapi.json`.

#[test]
fn committed_openapi_matches_the_code() {
    let generated = herald::http::openapi::document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    if std::env::var("HERALD_UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is stale: run `HERALD_UPDATE_OPENAPI=1 ./scripts/test openapi` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in ["/v1/channels", "/v1/me/subscriptions", "/admin/v1/accounts", "/v1/topics/{name}/subscriptions"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the document");
    }
}
