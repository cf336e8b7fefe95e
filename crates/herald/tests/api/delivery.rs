//! Delivery end to end through the real engine to a mock Web Push service: encryption that an
//! independent RFC 8291 decryptor reads, VAPID that verifies, and one test per outcome.

use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_providers::webpush::testing::UaKeyPair;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::{MockPush, Reply};

struct Setup {
    app: TestApp,
    sk: String,
    channel: Value,
    mock: MockPush,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let (_, channel) = app
        .post(
            "/v1/channels",
            &sk,
            json!({"name": "web", "type": "web_push", "config": {"subject": "mailto:ops@example.com"}}),
        )
        .await;
    Setup { app, sk, channel, mock: MockPush::start().await }
}

impl Setup {
    /// Registers a browser-like subscription (its own key pair and auth secret) for `user`.
    async fn browser(&self, user: &str, name: &str) -> (UaKeyPair, i64) {
        let ua = UaKeyPair::generate();
        let settings =
            json!({"endpoint": self.mock.endpoint(name), "keys": {"p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()}});
        let (status, sub) =
            self.app.post(&format!("/v1/users/{user}/subscriptions"), &self.sk, json!({"settings": settings})).await;
        assert_eq!(status, 201, "{sub}");
        (ua, sub["id"].as_i64().unwrap())
    }

    async fn subscription(&self, id: i64) -> Value {
        self.app.get(&format!("/v1/subscriptions/{id}"), &self.sk).await.1
    }
}

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Verifies `Authorization: vapid t=<jwt>, k=<key>` as a push service would (RFC 8292).
fn verify_vapid(header: &str, endpoint_origin: &str, vapid_public_key: &str) -> Value {
    let rest = header.strip_prefix("vapid ").expect("vapid scheme");
    let mut t = None;
    let mut k = None;
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').unwrap();
        match name {
            "t" => t = Some(value.to_string()),
            "k" => k = Some(value.to_string()),
            _ => {}
        }
    }
    let (t, k) = (t.expect("t"), k.expect("k"));
    assert_eq!(k, vapid_public_key, "k is the channel's VAPID key");
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    assert_eq!(header["alg"], "ES256");
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, b64(&k))
        .verify(signed.as_bytes(), &b64(parts[2]))
        .expect("VAPID signature verifies");
    let claims: Value = serde_json::from_slice(&b64(parts[1])).unwrap();
    assert_eq!(claims["aud"], endpoint_origin);
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "exp within 24 h");
    claims
}

async fn web_push_is_encrypted_signed_and_recorded(b: Backend) {
    let s = setup(b).await;
    let (ua, sub_id) = s.browser("alice", "a1").await;
    let accepted = s
        .app
        .send(
            &s.sk,
            json!({"to": {"user": "alice"}, "title": "Hello", "body": "World", "data": {"order": 42},
            "url": "https://example.com/o/42", "ttl": 600, "urgency": "high", "collapse_key": "order-42"}),
        )
        .await;
    assert_eq!(accepted["deliveries"], 1);
    let id = accepted["id"].as_str().unwrap();
    let n = s.app.wait_done(&s.sk, id).await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    let delivery = &n["deliveries"][0];
    assert_eq!(
        (delivery["subscription_id"].as_i64(), delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some(sub_id), Some("delivered"), Some(1))
    );
    assert_eq!(delivery["provider_status"], 201);

    let received = s.mock.received();
    assert_eq!(received.len(), 1);
    let req = &received[0];
    assert_eq!(req.path, "/push/a1");
    let h = |name: &str| req.headers.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(h("content-encoding").as_deref(), Some("aes128gcm"));
    assert_eq!(h("urgency").as_deref(), Some("high"));
    assert_eq!(h("topic").as_deref(), Some("order-42"));
    let ttl: u32 = h("ttl").unwrap().parse().unwrap();
    assert!((595..=600).contains(&ttl), "ttl {ttl}");
    verify_vapid(&h("authorization").unwrap(), &s.mock.base, s.channel["vapid_public_key"].as_str().unwrap());
    // The independent decryptor reads what a browser would.
    let plaintext = ua.decrypt(&req.body).expect("decrypts");
    let payload: Value = serde_json::from_slice(&plaintext).unwrap();
    assert_eq!(payload["title"], "Hello");
    assert_eq!(payload["body"], "World");
    assert_eq!(payload["data"]["order"], 42);
    assert_eq!(payload["url"], "https://example.com/o/42");

    let (_, history) = s.app.get(&format!("/v1/subscriptions/{sub_id}/deliveries"), &s.sk).await;
    assert_eq!(history["data"][0]["notification_id"], id);
}

async fn gone_deactivates_and_later_sends_skip(b: Backend) {
    let s = setup(b).await;
    let (_, sub_id) = s.browser("alice", "gone").await;
    s.mock.script([Reply::status(410)]);
    let id =
        s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "x"})).await["id"].as_str().unwrap().to_string();
    let n = s.app.wait_done(&s.sk, &id).await;
    assert_eq!((n["counts"]["failed"].as_i64(), n["deliveries"][0]["provider_status"].as_i64()), (Some(1), Some(410)));
    let sub = s.subscription(sub_id).await;
    assert_eq!(sub["status"], "inactive");
    assert!(sub["inactive_reason"].as_str().unwrap().contains("410"), "{sub}");
    let again = s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "y"})).await;
    assert_eq!(again["deliveries"], 0);
    assert_eq!(s.mock.received().len(), 1);
}

async fn rate_limited_retries_after_retry_after(b: Backend) {
    let s = setup(b).await;
    s.browser("alice", "busy").await;
    s.mock.script([Reply::status(429).header("retry-after", "1")]);
    let id =
        s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "x"})).await["id"].as_str().unwrap().to_string();
    let n = s.app.wait_done(&s.sk, &id).await;
    assert_eq!((n["counts"]["delivered"].as_i64(), n["deliveries"][0]["attempts"].as_i64()), (Some(1), Some(2)));
    let r = s.mock.received();
    assert_eq!(r.len(), 2);
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, before Retry-After");
}

async fn server_errors_retry_with_backoff(b: Backend) {
    let s = setup(b).await;
    s.browser("alice", "flaky").await;
    s.mock.script([Reply::status(500), Reply::status(503)]);
    let id =
        s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "x"})).await["id"].as_str().unwrap().to_string();
    let n = s.app.wait_done(&s.sk, &id).await;
    assert_eq!((n["counts"]["delivered"].as_i64(), n["deliveries"][0]["attempts"].as_i64()), (Some(1), Some(3)));
    let r = s.mock.received();
    // Base 50 ms, doubling, jittered to 50-100 %: at least 25 ms then 50 ms apart.
    assert!(r[1].at - r[0].at >= Duration::from_millis(25));
    assert!(r[2].at - r[1].at >= Duration::from_millis(50));
    // Every attempt carried the same payload size and a fresh encryption (salt differs).
    assert_ne!(r[0].body, r[1].body);
}

async fn timeouts_are_retried(b: Backend) {
    let s = setup(b).await;
    s.browser("alice", "slow").await;
    s.mock.script([Reply::status(201).delay(Duration::from_millis(1500))]);
    let id =
        s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "x"})).await["id"].as_str().unwrap().to_string();
    let n = s.app.wait_done(&s.sk, &id).await;
    assert_eq!((n["counts"]["delivered"].as_i64(), n["deliveries"][0]["attempts"].as_i64()), (Some(1), Some(2)), "{n}");
}

async fn vapid_rejection_marks_the_channel_unhealthy(b: Backend) {
    let s = setup(b).await;
    let (_, sub_id) = s.browser("alice", "vapid").await;
    s.mock.script([Reply::status(403)]);
    let id =
        s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "x"})).await["id"].as_str().unwrap().to_string();
    let n = s.app.wait_done(&s.sk, &id).await;
    assert_eq!(n["counts"]["failed"], 1);
    let (_, channel) = s.app.get(&format!("/v1/channels/{}", s.channel["id"].as_str().unwrap()), &s.sk).await;
    assert_eq!(channel["health"], "unhealthy");
    assert!(channel["last_error"].as_str().unwrap().contains("403"), "{channel}");
    let sub = s.subscription(sub_id).await;
    assert_eq!((sub["status"].as_str(), sub["inactive_reason"].as_str()), (Some("active"), None));
    // The next successful delivery heals the channel.
    let id =
        s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "y"})).await["id"].as_str().unwrap().to_string();
    s.app.wait_done(&s.sk, &id).await;
    let (_, channel) = s.app.get(&format!("/v1/channels/{}", s.channel["id"].as_str().unwrap()), &s.sk).await;
    assert_eq!(channel["health"], "healthy");
}

async fn ttl_passing_expires_the_delivery(b: Backend) {
    let s = setup(b).await;
    s.browser("alice", "late").await;
    s.mock.fallback(Reply::status(503).header("retry-after", "2"));
    let id = s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "x", "ttl": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let n = s.app.wait_done(&s.sk, &id).await;
    assert_eq!(n["counts"]["expired"], 1, "{n}");
    assert_eq!(s.mock.received().len(), 1);
}

async fn payload_limits_idempotency_and_muting(b: Backend) {
    let s = setup(b).await;
    let (_, muted) = s.browser("alice", "m1").await;
    s.browser("alice", "m2").await;
    s.app.call(Method::PATCH, &format!("/v1/subscriptions/{muted}"), Some(&s.sk), Some(json!({"muted": true}))).await;
    let before = s.app.snapshot().await;
    let notifications = s.app.scalar_i64("SELECT COUNT(*) FROM notifications").await;
    let got = s.app.post("/v1/notifications", &s.sk, json!({"to": {"user": "alice"}, "body": "x".repeat(4000)})).await;
    assert_field(&got, "content", "payload_too_large");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("Web Push"), "{}", got.1);
    for bad in [
        json!({"to": {"user": "alice", "topic": "t"}, "title": "x"}),
        json!({"to": {"users": []}, "title": "x"}),
        json!({"to": {"user": "alice"}, "ttl": 2419201}),
        json!({"to": {"user": "alice"}, "urgency": "asap"}),
        json!({"to": {"user": "alice"}, "collapse_key": "has spaces"}),
        json!({"to": {"user": "alice"}, "send_at": "tomorrow"}),
        json!({"to": {"user": "alice"}, "channels": ["carrier_pigeon"]}),
        json!({"to": {"user": "alice"}, "data": [1]}),
    ] {
        assert_error(&s.app.post("/v1/notifications", &s.sk, bad).await, 422, "validation_failed");
    }
    assert_error(
        &s.app.post("/v1/notifications", &s.sk, json!({"to": {"user": "nobody"}, "title": "x"})).await,
        404,
        "not_found",
    );
    assert_error(
        &s.app.post("/v1/notifications", &s.sk, json!({"to": {"subscription": 999999}, "title": "x"})).await,
        404,
        "not_found",
    );
    assert_eq!(s.app.scalar_i64("SELECT COUNT(*) FROM notifications").await, notifications);
    assert_eq!(before, s.app.snapshot().await);

    let send = |key: &'static str, title: &'static str| {
        let app = &s.app;
        let sk = s.sk.clone();
        async move {
            app.call_headers(
                Method::POST,
                "/v1/notifications",
                &[("authorization", &format!("Bearer {sk}")), ("idempotency-key", key)],
                Some(json!({"to": {"user": "alice"}, "title": title})),
            )
            .await
        }
    };
    let first = send("k-1", "hi").await;
    assert_eq!(first.0, 202);
    assert_eq!(first.1["deliveries"], 2);
    let replay = send("k-1", "hi").await;
    assert_eq!((replay.0.as_u16(), &replay.1), (202, &first.1));
    let conflict = send("k-1", "different").await;
    assert_error(&conflict, 409, "conflict");
    assert_eq!(conflict.1["error"]["details"]["idempotency_key"], "k-1");
    assert_eq!(s.app.scalar_i64("SELECT COUNT(*) FROM notifications").await, notifications + 1);
    let n = s.app.wait_done(&s.sk, first.1["id"].as_str().unwrap()).await;
    assert_eq!((n["counts"]["delivered"].as_i64(), n["counts"]["skipped_muted"].as_i64()), (Some(1), Some(1)), "{n}");
    assert_eq!(s.mock.received().len(), 1);
    // After 24 hours the key may be used again, for a new notification.
    s.app.execute("UPDATE notifications SET created_at = created_at - 90000000 WHERE idempotency_key = 'k-1'").await;
    let reused = send("k-1", "different").await;
    assert_eq!(reused.0, 202, "{}", reused.1);
    assert_ne!(reused.1["id"], first.1["id"]);
}

async fn per_host_concurrency_is_limited(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.delivery_per_host = 2).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let mock = MockPush::start().await;
    mock.fallback(Reply::status(201).delay(Duration::from_millis(150)));
    for i in 0..8 {
        let ua = UaKeyPair::generate();
        let settings =
            json!({"endpoint": mock.endpoint(&format!("h{i}")), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
        app.post("/v1/users/alice/subscriptions", &sk, json!({"settings": settings})).await;
    }
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "x"})).await;
    let n = app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 8);
    assert_eq!(mock.max_concurrent(), 2, "at most delivery_per_host requests at once to one host");
}

async fn topic_broadcast_fans_out(b: Backend) {
    let s = setup(b).await;
    for i in 0..25 {
        let (_, id) = s.browser(&format!("u{i}"), &format!("t{i}")).await;
        if i % 5 != 0 {
            s.app.call(Method::PUT, &format!("/v1/subscriptions/{id}/topics/news"), Some(&s.sk), None).await;
        }
    }
    let accepted = s.app.send(&s.sk, json!({"to": {"topic": "news"}, "title": "Extra!"})).await;
    assert_eq!(accepted["fanout"], "pending");
    let n = s.app.wait_done(&s.sk, accepted["id"].as_str().unwrap()).await;
    assert_eq!(n["fanout"], json!({"status": "done", "deliveries": 20}));
    assert_eq!(n["counts"]["delivered"], 20);
    assert_eq!(s.mock.received().len(), 20);
    let channel_id = s.channel["id"].as_str().unwrap();
    let all = s.app.send(&s.sk, json!({"to": {"channel_id": channel_id}, "title": "All"})).await;
    let n = s.app.wait_done(&s.sk, all["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 25);
}

async fn inbox_and_scheduled_sends(b: Backend) {
    let s = setup(b).await;
    s.browser("alice", "inbox").await;
    let send_at = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1200);
    let send_at = send_at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let later = s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "later", "send_at": send_at})).await;
    let now = s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "now"})).await;
    s.app.wait_done(&s.sk, now["id"].as_str().unwrap()).await;
    assert_eq!(s.mock.received().len(), 1, "the scheduled one waits");
    let started = std::time::Instant::now();
    s.app.wait_done(&s.sk, later["id"].as_str().unwrap()).await;
    assert_eq!(s.mock.received().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let (_, session) = s.app.post("/v1/sessions", &s.sk, json!({"user": "alice"})).await;
    let token = session["session_id"].as_str().unwrap();
    let (_, inbox) = s.app.get("/v1/me/notifications", token).await;
    let titles: Vec<&str> = inbox["data"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["now", "later"]);
    assert!(inbox["data"][0]["read_at"].is_null());
    let id = now["id"].as_str().unwrap();
    let (status, read) = s.app.call(Method::POST, &format!("/v1/me/notifications/{id}/read"), Some(token), None).await;
    assert_eq!(status, 200);
    assert!(read["read_at"].is_string());
    let (_, inbox) = s.app.get("/v1/users/alice/notifications", &s.sk).await;
    assert!(inbox["data"][0]["read_at"].is_string());
    assert_error(
        &s.app.call(Method::POST, "/v1/me/notifications/nope/read", Some(token), None).await,
        404,
        "not_found",
    );
}

both_backends!(
    web_push_is_encrypted_signed_and_recorded,
    gone_deactivates_and_later_sends_skip,
    rate_limited_retries_after_retry_after,
    server_errors_retry_with_backoff,
    timeouts_are_retried,
    vapid_rejection_marks_the_channel_unhealthy,
    ttl_passing_expires_the_delivery,
    payload_limits_idempotency_and_muting,
    topic_broadcast_fans_out,
    inbox_and_scheduled_sends,
    per_host_concurrency_is_limited,
);
