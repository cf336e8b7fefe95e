//! APNs and FCM through the API, the engine and the real providers, to HTTP/2 mocks that verify
//! the provider token (ES256) and the OAuth2 JWT-bearer grant (RS256).

use herald_providers::mock::{MockApns, MockApnsConfig, MockFcm, MockFcmConfig, MockResponse, fixtures};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

async fn channel(app: &TestApp, sk: &str, kind: &str, config: Value) -> String {
    let (status, c) = app.post("/v1/channels", sk, json!({"name": kind, "type": kind, "config": config})).await;
    assert_eq!(status, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

async fn register(app: &TestApp, sk: &str, user: &str, body: Value) -> i64 {
    let (status, s) = app.post(&format!("/v1/users/{user}/subscriptions"), sk, body).await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_i64().unwrap()
}

async fn apns_alert_and_voip_pushes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    channel(&app, &sk, "apns", fixtures::apns_channel_config(mock.base_url())).await;
    let voip_token = "f".repeat(64);
    register(&app, &sk, "alice", json!({"settings": {"token": fixtures::TEST_DEVICE_TOKEN}})).await;
    register(&app, &sk, "alice", json!({"settings": {"token": voip_token}, "kind": "voip"})).await;
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "Call", "body": "Bob is calling", "collapse_key": "call-1", "urgency": "high"})).await;
    let n = app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 2, "{n}");
    assert!(mock.rejected().is_empty(), "{:?}", mock.rejected());
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let h = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_string();
        assert_eq!(r.version, "HTTP/2.0");
        let voip = r.path.ends_with(&voip_token);
        assert_eq!(h("apns-push-type"), if voip { "voip" } else { "alert" });
        assert_eq!(
            h("apns-topic"),
            if voip { format!("{}.voip", fixtures::TEST_BUNDLE_ID) } else { fixtures::TEST_BUNDLE_ID.to_string() }
        );
        assert_eq!(h("apns-priority"), "10");
        assert_eq!(h("apns-collapse-id"), "call-1");
        let delivery = n["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["message_id"] == h("apns-id"))
            .expect("apns-id is the delivery's message id");
        assert_eq!(delivery["status"], "delivered");
        let payload: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(payload["herald_receipt"].as_str().is_some_and(|t| t.starts_with("hr1.")), "{payload}");
        assert_eq!(payload["aps"]["alert"]["title"], "Call");
    }
}

async fn apns_answers_prune_or_mark_the_channel(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let channel_id = channel(&app, &sk, "apns", fixtures::apns_channel_config(mock.base_url())).await;
    let sub = register(&app, &sk, "alice", json!({"settings": {"token": fixtures::TEST_DEVICE_TOKEN}})).await;

    mock.push_response(MockResponse::apns_error(403, "InvalidProviderToken"));
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "x"})).await;
    let n = app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["failed"], 1, "{n}");
    let (_, c) = app.get(&format!("/v1/channels/{channel_id}"), &sk).await;
    assert_eq!(c["health"], "unhealthy");
    assert!(c["last_error"].as_str().unwrap().contains("InvalidProviderToken"), "{c}");
    let (_, s) = app.get(&format!("/v1/subscriptions/{sub}"), &sk).await;
    assert_eq!(s["status"], "active", "a configuration error never prunes");

    mock.push_response(MockResponse::apns_error(410, "Unregistered"));
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "y"})).await;
    app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    let (_, s) = app.get(&format!("/v1/subscriptions/{sub}"), &sk).await;
    assert_eq!(s["status"], "inactive");
    assert!(s["inactive_reason"].as_str().unwrap().contains("Unregistered"), "{s}");
}

async fn fcm_grant_refresh_and_unregistered(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let mock = MockFcm::start(MockFcmConfig::with_test_key()).await.unwrap();
    channel(&app, &sk, "fcm", fixtures::fcm_channel_config(&mock)).await;
    let sub = register(&app, &sk, "alice", json!({"settings": {"token": "fcm-token:APA91b-test"}})).await;

    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "Hi", "data": {"k": 1}})).await;
    let n = app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    assert!(n["deliveries"][0]["provider_message_id"].as_str().unwrap().starts_with("projects/"));
    assert_eq!(mock.tokens_issued(), 1);
    let body: Value = serde_json::from_slice(&mock.requests().last().unwrap().body).unwrap();
    assert_eq!(body["message"]["token"], "fcm-token:APA91b-test");
    assert_eq!(body["message"]["notification"]["title"], "Hi");
    assert_eq!(body["message"]["data"]["k"], "1");
    let receipt = body["message"]["data"]["herald_receipt"].as_str().unwrap();
    assert_eq!(
        app.call(reqwest::Method::POST, "/v1/receipts", None, Some(json!({"token": receipt, "event": "displayed"})))
            .await
            .0,
        204
    );

    // The access token is revoked: the send gets 401, Herald fetches a new one and retries.
    mock.revoke_tokens();
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "Again"})).await;
    let n = app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    assert_eq!(mock.tokens_issued(), 2);

    mock.push_response(MockResponse::fcm_error(404, "NOT_FOUND", Some("UNREGISTERED")));
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "Gone"})).await;
    app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    let (_, s) = app.get(&format!("/v1/subscriptions/{sub}"), &sk).await;
    assert_eq!(s["status"], "inactive", "{s}");
    // Payload limits name the provider.
    register(&app, &sk, "bob", json!({"settings": {"token": "fcm-token:bob"}})).await;
    let got =
        app.post("/v1/notifications", &sk, json!({"to": {"user": "bob"}, "data": {"blob": "x".repeat(4100)}})).await;
    assert_field(&got, "content", "payload_too_large");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("FCM"), "{}", got.1);
}

both_backends!(apns_alert_and_voip_pushes, apns_answers_prune_or_mark_the_channel, fcm_grant_refresh_and_unregistered);
