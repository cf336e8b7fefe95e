//! Channels: per-type configuration, secrets never returned, defaults, deletion.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

pub fn apns_config() -> Value {
    json!({"team_id": "TEAM123456", "key_id": "KEY1234567", "private_key": fixture("ec_private.pem"),
           "bundle_id": "com.example.app", "environment": "sandbox"})
}

pub fn fcm_config() -> Value {
    json!({"service_account": {"type": "service_account", "project_id": "demo-project",
        "client_email": "herald@demo-project.iam.gserviceaccount.com", "private_key": fixture("rsa_private.pem"),
        "token_uri": "https://oauth2.googleapis.com/token"}})
}

async fn each_type_validates_and_hides_secrets(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let (status, web) = app
        .post(
            "/v1/channels",
            &sk,
            json!({"name": "web", "type": "web_push", "config": {"subject": "mailto:ops@example.com"}}),
        )
        .await;
    assert_eq!(status, 201, "{web}");
    let vapid = web["vapid_public_key"].as_str().unwrap();
    let point = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, vapid).unwrap();
    assert_eq!((point.len(), point[0]), (65, 4));
    assert_eq!(web["is_default"], true);
    assert_eq!(web["health"], "healthy");

    let (status, apns) =
        app.post("/v1/channels", &sk, json!({"name": "ios", "type": "apns", "config": apns_config()})).await;
    assert_eq!(status, 201, "{apns}");
    let (status, fcm) =
        app.post("/v1/channels", &sk, json!({"name": "android", "type": "fcm", "config": fcm_config()})).await;
    assert_eq!(status, 201, "{fcm}");
    assert_eq!(fcm["config"]["service_account"]["project_id"], "demo-project");
    let (_, list) = app.get("/v1/channels", &sk).await;
    let text = list.to_string();
    assert!(!text.contains("PRIVATE KEY") && !text.contains("vapid_private_key"), "secrets leaked: {text}");
    assert_eq!(list["data"].as_array().unwrap().len(), 3);

    let before = app.snapshot().await;
    let bad = [
        (json!({"name": "w", "type": "web_push", "config": {}}), "config.subject", "required"),
        (json!({"name": "w", "type": "web_push", "config": {"subject": "ftp://x"}}), "config.subject", "invalid"),
        (
            json!({"name": "a", "type": "apns", "config": {"team_id": "T", "key_id": "KEY1234567", "private_key": fixture("ec_private.pem"), "bundle_id": "a.b"}}),
            "config.team_id",
            "invalid",
        ),
        (
            json!({"name": "a", "type": "apns", "config": {"team_id": "TEAM123456", "key_id": "KEY1234567", "private_key": fixture("rsa_private.pem"), "bundle_id": "a.b"}}),
            "config.private_key",
            "invalid",
        ),
        (
            json!({"name": "a", "type": "apns", "config": {"team_id": "TEAM123456", "key_id": "KEY1234567", "private_key": fixture("ec_private.pem"), "bundle_id": "a.b", "environment": "staging"}}),
            "config.environment",
            "invalid",
        ),
        (json!({"name": "f", "type": "fcm", "config": {}}), "config.service_account", "required"),
        (
            json!({"name": "f", "type": "fcm", "config": {"service_account": {"project_id": "p", "client_email": "e", "private_key": "nope", "token_uri": "https://o/t"}}}),
            "config.service_account.private_key",
            "invalid",
        ),
        (
            json!({"name": "f", "type": "fcm", "config": {"service_account": {"client_email": "e", "private_key": fixture("rsa_private.pem"), "token_uri": "https://o/t"}}}),
            "config.service_account.project_id",
            "required",
        ),
        (
            json!({"name": "w", "type": "web_push", "config": {"subject": "mailto:a@b", "endpoint": "https://10.0.0.1/"}}),
            "config.endpoint",
            "invalid",
        ),
        (json!({"name": "w", "type": "carrier_pigeon", "config": {}}), "type", "invalid"),
        (json!({"type": "web_push", "config": {"subject": "mailto:a@b"}}), "name", "required"),
        (json!({"name": "n".repeat(256), "type": "web_push", "config": {"subject": "mailto:a@b"}}), "name", "too_long"),
    ];
    for (body, field, reason) in bad {
        assert_field(&app.post("/v1/channels", &sk, body).await, field, reason);
    }
    assert_eq!(before, app.snapshot().await);
}

async fn defaults_updates_and_deletion(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let first = app.web_push_channel(&sk).await;
    let second = app.web_push_channel(&sk).await;
    let (_, c2) = app.get(&format!("/v1/channels/{second}"), &sk).await;
    assert_eq!(c2["is_default"], false);
    let (_, sub) = app
        .post(
            "/v1/users/alice/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/d")}),
        )
        .await;
    assert_eq!(sub["channel_id"], first, "registration uses the default channel");

    let (status, c2) = app
        .call(
            Method::PATCH,
            &format!("/v1/channels/{second}"),
            Some(&sk),
            Some(json!({"is_default": true, "name": "renamed"})),
        )
        .await;
    assert_eq!(status, 200, "{c2}");
    assert_eq!((c2["is_default"].as_bool(), c2["name"].as_str()), (Some(true), Some("renamed")));
    let (_, c1) = app.get(&format!("/v1/channels/{first}"), &sk).await;
    assert_eq!(c1["is_default"], false);
    // Reconfiguring keeps the generated VAPID key.
    let vapid = c1["vapid_public_key"].clone();
    let (_, c1) = app
        .call(
            Method::PATCH,
            &format!("/v1/channels/{first}"),
            Some(&sk),
            Some(json!({"config": {"subject": "https://example.com/contact"}})),
        )
        .await;
    assert_eq!(c1["vapid_public_key"], vapid);
    assert_eq!(c1["config"]["subject"], "https://example.com/contact");
    assert_field(
        &app.call(Method::PATCH, &format!("/v1/channels/{first}"), Some(&sk), Some(json!({"type": "apns"}))).await,
        "type",
        "immutable",
    );

    // Deleting a channel deactivates its subscriptions and it disappears.
    assert_eq!(app.call(Method::DELETE, &format!("/v1/channels/{first}"), Some(&sk), None).await.0, 204);
    assert_error(&app.get(&format!("/v1/channels/{first}"), &sk).await, 404, "not_found");
    let (_, sub) = app.get(&format!("/v1/subscriptions/{}", sub["id"]), &sk).await;
    assert_eq!((sub["status"].as_str(), sub["inactive_reason"].as_str()), (Some("inactive"), Some("channel_deleted")));
    // Deleting the default hands the role on.
    assert_eq!(app.call(Method::DELETE, &format!("/v1/channels/{second}"), Some(&sk), None).await.0, 204);
    let third = app.web_push_channel(&sk).await;
    let (_, c3) = app.get(&format!("/v1/channels/{third}"), &sk).await;
    assert_eq!(c3["is_default"], true);
}

both_backends!(each_type_validates_and_hides_secrets, defaults_updates_and_deletion);
