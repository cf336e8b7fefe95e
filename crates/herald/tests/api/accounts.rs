//! The operator API and what a paused account may do.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

async fn create_list_get_and_pause(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (status, body) = app
        .call(Method::POST, "/admin/v1/accounts", Some(ADMIN_TOKEN), Some(json!({"name": "acme", "dev_mode": true})))
        .await;
    assert_eq!(status, 201);
    for field in ["id", "name", "status", "dev_mode", "secret_key", "public_key", "created_at"] {
        assert!(body.get(field).is_some(), "missing {field} in {body}");
    }
    assert_eq!(body["status"], "active");
    assert_eq!(body["dev_mode"], true);
    let id = body["id"].as_i64().unwrap();
    let sk = body["secret_key"].as_str().unwrap().to_string();
    assert!(sk.starts_with("sk_") && body["public_key"].as_str().unwrap().starts_with("pk_"));

    let (status, one) = app.get(&format!("/admin/v1/accounts/{id}"), ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert!(one.get("secret_key").is_none(), "keys are shown once only");
    app.account(false).await;
    let (_, page) = app.get("/admin/v1/accounts?limit=1", ADMIN_TOKEN).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = app.get(&format!("/admin/v1/accounts?limit=1&cursor={cursor}"), ADMIN_TOKEN).await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert_ne!(page2["data"][0]["id"], page["data"][0]["id"]);

    // Keys work while active, get 403 while paused, and work again once resumed.
    assert_eq!(app.get("/v1/channels", &sk).await.0, 200);
    let (status, paused) = app
        .call(Method::PATCH, &format!("/admin/v1/accounts/{id}"), Some(ADMIN_TOKEN), Some(json!({"status": "paused"})))
        .await;
    assert_eq!((status.as_u16(), paused["status"].as_str()), (200, Some("paused")));
    assert_error(&app.get("/v1/channels", &sk).await, 403, "forbidden");
    app.call(Method::PATCH, &format!("/admin/v1/accounts/{id}"), Some(ADMIN_TOKEN), Some(json!({"status": "active"})))
        .await;
    assert_eq!(app.get("/v1/channels", &sk).await.0, 200);
}

async fn operator_api_needs_the_admin_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let before = app.snapshot().await;
    assert_error(
        &app.call(Method::POST, "/admin/v1/accounts", None, Some(json!({"name": "x"}))).await,
        401,
        "unauthenticated",
    );
    assert_error(
        &app.call(Method::POST, "/admin/v1/accounts", Some("wrong-token-wrong-token"), Some(json!({"name": "x"})))
            .await,
        401,
        "unauthenticated",
    );
    let (_, sk, _) = app.account(false).await;
    let after_account = app.snapshot().await;
    assert_ne!(before, after_account);
    // An account key is not an operator credential.
    assert_error(
        &app.call(Method::POST, "/admin/v1/accounts", Some(&sk), Some(json!({"name": "x"}))).await,
        401,
        "unauthenticated",
    );
    assert_error(&app.get("/admin/v1/accounts/999999", ADMIN_TOKEN).await, 404, "not_found");
    assert_error(
        &app.call(Method::PATCH, "/admin/v1/accounts/1", Some(ADMIN_TOKEN), Some(json!({"status": "gone"}))).await,
        422,
        "validation_failed",
    );
    assert_eq!(after_account, app.snapshot().await);
}

async fn operator_api_is_absent_without_a_token(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.admin_token.clear()).await;
    assert_error(
        &app.call(Method::POST, "/admin/v1/accounts", Some(ADMIN_TOKEN), Some(json!({"name": "x"}))).await,
        404,
        "not_found",
    );
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM accounts").await, 0);
}

async fn rate_limits_are_per_credential_and_per_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (id, sk, _) = app.account(false).await;
    let (status, account) = app
        .call(
            Method::PATCH,
            &format!("/admin/v1/accounts/{id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"rate_limit_per_minute": 5})),
        )
        .await;
    assert_eq!((status.as_u16(), account["rate_limit_per_minute"].as_i64()), (200, Some(5)));
    for _ in 0..5 {
        assert_eq!(app.get("/v1/channels", &sk).await.0, 200);
    }
    let res = app.http.get(format!("{}/v1/channels", app.base)).bearer_auth(&sk).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let h = res.headers().clone();
    let retry_after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_eq!(h["ratelimit-policy"], "5;w=60");
    assert!(h["ratelimit"].to_str().unwrap().contains("remaining=0"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["details"]["limit"], 5);
    assert_eq!(body["error"]["details"]["window"], "60s");
    // Another credential of the same account has its own budget; a spoofed header changes nothing.
    let (_, key) =
        app.call(Method::POST, "/admin/v1/accounts", Some(ADMIN_TOKEN), Some(json!({"name": "other"}))).await;
    let other = key["secret_key"].as_str().unwrap();
    assert_eq!(app.get("/v1/channels", other).await.0, 200);
    let spoofed = app
        .call_headers(
            Method::GET,
            "/v1/channels",
            &[("authorization", &format!("Bearer {sk}")), ("x-forwarded-for", "10.9.9.9")],
            None,
        )
        .await;
    assert_error(&spoofed, 429, "rate_limited");
    // Resetting restores the server default.
    app.call(
        Method::PATCH,
        &format!("/admin/v1/accounts/{id}"),
        Some(ADMIN_TOKEN),
        Some(json!({"rate_limit_per_minute": null})),
    )
    .await;
    let (_, account) = app.get(&format!("/admin/v1/accounts/{id}"), ADMIN_TOKEN).await;
    assert!(account["rate_limit_per_minute"].is_null());
    assert_field(
        &app.call(
            Method::PATCH,
            &format!("/admin/v1/accounts/{id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"rate_limit_per_minute": 0})),
        )
        .await,
        "rate_limit_per_minute",
        "out_of_range",
    );
}

both_backends!(
    create_list_get_and_pause,
    operator_api_needs_the_admin_token,
    operator_api_is_absent_without_a_token,
    rate_limits_are_per_credential_and_per_account,
);
