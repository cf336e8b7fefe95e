//! Webhooks: Standard Webhooks signatures checked by an independent verifier (the
//! `standardwebhooks` crate), retries through the durable outbox, the 5-day disable, the SSRF
//! guard, and bnotify's channel callbacks.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::{MockPush, Received, Reply};

async fn wait_for(mock: &MockPush, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = mock.received();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "expected {n} hook requests, got {}", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn body(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

async fn webhook(app: &TestApp, sk: &str, url: &str, events: &[&str]) -> (String, String) {
    let (status, w) = app.post("/v1/webhooks", sk, json!({"url": url, "events": events})).await;
    assert_eq!(status, 201, "{w}");
    (w["id"].as_str().unwrap().to_string(), w["secret"].as_str().unwrap().to_string())
}

async fn events_are_signed_and_verify(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let push = MockPush::start().await;
    let receiver = MockPush::start().await;
    let (id, secret) = webhook(
        &app,
        &sk,
        &receiver.endpoint("hook"),
        &["subscription.created", "subscription.deleted", "notification.delivered"],
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = app.get("/v1/webhooks", &sk).await;
    assert!(!listed.to_string().contains(&secret[6..]), "the secret is never shown again");

    let ua = herald_providers::webpush::testing::UaKeyPair::generate();
    let settings = json!({"endpoint": push.endpoint("w"), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
    let (_, sub) = app.post("/v1/users/alice/subscriptions", &sk, json!({"settings": settings})).await;
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "hi"})).await;
    app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    app.call(Method::DELETE, &format!("/v1/subscriptions/{}", sub["id"]), Some(&sk), None).await;
    let got = wait_for(&receiver, 3).await;
    let types: Vec<String> = got.iter().map(|r| body(r)["type"].as_str().unwrap().to_string()).collect();
    for t in ["subscription.created", "notification.delivered", "subscription.deleted"] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    for r in &got {
        verifier.verify(&r.body, &r.headers).expect("signature verifies");
        assert!(r.headers["webhook-id"].to_str().unwrap().starts_with("msg_"));
    }
    let created = got.iter().find(|r| body(r)["type"] == "subscription.created").unwrap();
    assert_eq!(body(created)["data"]["id"], sub["id"]);
    let delivered = got.iter().find(|r| body(r)["type"] == "notification.delivered").unwrap();
    assert_eq!(body(delivered)["data"]["notification_id"], sent["id"]);

    // Empty, truncated, re-signed-for-another-body and stale signatures all fail.
    let r = &got[0];
    let mut h = r.headers.clone();
    h.insert("webhook-signature", "".parse().unwrap());
    assert!(verifier.verify(&r.body, &h).is_err());
    let sig = r.headers["webhook-signature"].to_str().unwrap();
    h.insert("webhook-signature", sig[..sig.len() - 6].parse().unwrap());
    assert!(verifier.verify(&r.body, &h).is_err());
    assert!(verifier.verify(b"{\"type\":\"forged\"}", &r.headers).is_err());
    let mut stale = r.headers.clone();
    let old = r.headers["webhook-timestamp"].to_str().unwrap().parse::<i64>().unwrap() - 600;
    stale.insert("webhook-timestamp", old.to_string().parse().unwrap());
    assert!(verifier.verify(&r.body, &stale).is_err());
    assert!(
        standardwebhooks::Webhook::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap()
            .verify(&r.body, &r.headers)
            .is_err()
    );

    // Rotation: the new secret is shown once and signs from then on.
    let (status, rotated) =
        app.call(Method::PATCH, &format!("/v1/webhooks/{id}"), Some(&sk), Some(json!({"rotate_secret": true}))).await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    app.post(
        "/v1/users/bob/subscriptions",
        &sk,
        json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/bob")}),
    )
    .await;
    let got = wait_for(&receiver, 4).await;
    standardwebhooks::Webhook::new(new_secret)
        .unwrap()
        .verify(&got[3].body, &got[3].headers)
        .expect("new secret signs");
}

async fn failures_retry_then_disable_after_five_days(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let flaky = MockPush::start().await;
    flaky.script([Reply::status(500), Reply::status(503)]);
    let (flaky_id, _) = webhook(&app, &sk, &flaky.endpoint("f"), &["subscription.created"]).await;
    app.post(
        "/v1/users/a/subscriptions",
        &sk,
        json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/a")}),
    )
    .await;
    let got = wait_for(&flaky, 3).await;
    assert_eq!(
        got.iter().map(|r| r.headers["webhook-id"].clone()).collect::<std::collections::HashSet<_>>().len(),
        1,
        "retries keep the message id"
    );
    assert!(got[1].at - got[0].at >= Duration::from_millis(25), "backoff between attempts");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.scalar_i64("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered' AND attempts = 3").await,
        1
    );
    let (_, w) = app.get(&format!("/v1/webhooks/{flaky_id}"), &sk).await;
    assert!(w["failing_since"].is_null(), "a success ends the failing streak: {w}");

    // An endpoint failing for five days is disabled, and the account hears of it.
    let watcher = MockPush::start().await;
    webhook(&app, &sk, &watcher.endpoint("w"), &["webhook.disabled"]).await;
    flaky.fallback(Reply::status(500));
    app.execute(&format!(
        "UPDATE webhooks SET failing_since = {} WHERE id = '{flaky_id}'",
        now_ms() - 5 * 24 * 3600 * 1000 - 60_000
    ))
    .await;
    app.post(
        "/v1/users/b/subscriptions",
        &sk,
        json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/b")}),
    )
    .await;
    let notice = wait_for(&watcher, 1).await;
    assert_eq!(body(&notice[0])["type"], "webhook.disabled");
    assert_eq!(body(&notice[0])["data"]["id"], flaky_id.as_str());
    let (_, w) = app.get(&format!("/v1/webhooks/{flaky_id}"), &sk).await;
    assert_eq!((w["enabled"].as_bool(), w["disabled_reason"].as_str()), (Some(false), Some("failing for 5 days")));
    // Re-enabling clears the streak.
    let (_, w) =
        app.call(Method::PATCH, &format!("/v1/webhooks/{flaky_id}"), Some(&sk), Some(json!({"enabled": true}))).await;
    assert_eq!((w["enabled"].as_bool(), w["failing_since"].is_null()), (Some(true), true));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn webhook_input_is_validated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let before = app.snapshot().await;
    for (body, field) in [
        (json!({"url": "https://169.254.169.254/hook", "events": ["subscription.created"]}), "url"),
        (json!({"url": "http://example.com/hook", "events": ["subscription.created"]}), "url"),
        (json!({"url": "https://user:pw@example.com/hook", "events": ["subscription.created"]}), "url"),
        (json!({"url": "https://example.com/hook", "events": []}), "events"),
        (json!({"url": "https://example.com/hook", "events": ["everything"]}), "events[0]"),
        (json!({"events": ["subscription.created"]}), "url"),
    ] {
        let got = app.post("/v1/webhooks", &sk, body).await;
        assert_error(&got, 422, "validation_failed");
        assert_eq!(got.1["error"]["details"]["fields"][0]["field"], field);
    }
    assert_eq!(before, app.snapshot().await);
    assert_error(&app.get("/v1/webhooks/nope", &sk).await, 404, "not_found");
}

async fn channel_callbacks_hear_subscribes_and_unsubscribes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let receiver = MockPush::start().await;
    receiver.script([Reply::status(502)]);
    let config = json!({"subject": "mailto:ops@example.com", "callback_url": receiver.endpoint("cb"), "callback_auth": "aGVyYWxkOnNlY3JldA=="});
    let (_, channel) =
        app.post("/v1/channels", &sk, json!({"name": "web", "type": "web_push", "config": config})).await;
    assert!(channel["config"].get("callback_auth").is_none(), "the callback credential is a secret: {channel}");
    assert_eq!(channel["config"]["callback_url"], receiver.endpoint("cb"));
    let (_, sub) = app
        .post(
            "/v1/users/iuid-7/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/cb")}),
        )
        .await;
    app.call(Method::DELETE, &format!("/v1/subscriptions/{}", sub["id"]), Some(&sk), None).await;
    let got = wait_for(&receiver, 3).await;
    let ok: Vec<&Received> = got.iter().skip(1).collect();
    for r in &ok {
        assert_eq!(r.headers["authorization"], "Basic aGVyYWxkOnNlY3JldA==");
        let b = body(r);
        assert_eq!((b["channelId"].as_str(), b["iuid"].as_str()), (channel["id"].as_str(), Some("iuid-7")));
        assert!(
            b["date"].as_i64().unwrap() > 1_700_000_000 && b["date"].as_i64().unwrap() < 10_000_000_000,
            "POSIX seconds"
        );
        assert!(b["message"].is_string());
    }
    let kinds: Vec<Value> = ok.iter().map(|r| body(r)["type"].clone()).collect();
    assert!(kinds.contains(&json!("subscription")) && kinds.contains(&json!("unsubcription")), "{kinds:?}");
    assert_field(
        &app.post("/v1/channels", &sk, json!({"name": "x", "type": "web_push", "config": {"subject": "mailto:a@b.c", "callback_url": "https://10.1.2.3/cb"}})).await,
        "config.callback_url",
        "invalid",
    );
}

async fn a_moved_device_is_reported_deactivated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let receiver = MockPush::start().await;
    let (_, secret) = webhook(&app, &sk, &receiver.endpoint("m"), &["subscription.deactivated"]).await;
    let body_of = json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/shared")});
    let (_, alice) = app.post("/v1/users/alice/subscriptions", &sk, body_of.clone()).await;
    app.post("/v1/users/bob/subscriptions", &sk, body_of).await;
    let got = wait_for(&receiver, 1).await;
    standardwebhooks::Webhook::new(&secret).unwrap().verify(&got[0].body, &got[0].headers).unwrap();
    let event = body(&got[0]);
    assert_eq!(event["type"], "subscription.deactivated");
    assert_eq!((event["data"]["id"].clone(), event["data"]["reason"].as_str()), (alice["id"].clone(), Some("moved")));
    assert_eq!(event["data"]["user"], "alice");
}

both_backends!(
    a_moved_device_is_reported_deactivated,
    events_are_signed_and_verify,
    failures_retry_then_disable_after_five_days,
    webhook_input_is_validated,
    channel_callbacks_hear_subscribes_and_unsubscribes,
);
