//! Bad input on every endpoint: each gets the documented status and error body, and the
//! database is unchanged afterwards.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// Every authenticated `/v1` endpoint with a body-bearing method, as (method, path template).
/// `{sub}`, `{channel}`, `{key}` are filled with real ids of the caller's account.
const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{key}"),
    ("POST", "/v1/signing-keys"),
    ("GET", "/v1/signing-keys"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/channels"),
    ("GET", "/v1/channels"),
    ("GET", "/v1/channels/{channel}"),
    ("PATCH", "/v1/channels/{channel}"),
    ("DELETE", "/v1/channels/{channel}"),
    ("PUT", "/v1/users/alice"),
    ("GET", "/v1/users/alice"),
    ("DELETE", "/v1/users/alice"),
    ("POST", "/v1/users/alice/subscriptions"),
    ("GET", "/v1/users/alice/subscriptions"),
    ("GET", "/v1/subscriptions/{sub}"),
    ("PATCH", "/v1/subscriptions/{sub}"),
    ("DELETE", "/v1/subscriptions/{sub}"),
    ("PUT", "/v1/subscriptions/{sub}/topics/news"),
    ("DELETE", "/v1/subscriptions/{sub}/topics/news"),
    ("GET", "/v1/topics/news/subscriptions"),
];

/// Endpoints that take a JSON body.
const BODY_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/keys"),
    ("POST", "/v1/signing-keys"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/channels"),
    ("PATCH", "/v1/channels/{channel}"),
    ("PUT", "/v1/users/alice"),
    ("POST", "/v1/users/alice/subscriptions"),
    ("PATCH", "/v1/subscriptions/{sub}"),
    ("POST", "/v1/me/subscriptions"),
    ("PATCH", "/v1/me/subscriptions/{sub}"),
];

struct Fixture {
    app: TestApp,
    sk: String,
    session: String,
    channel: String,
    sub: i64,
    key: String,
}

async fn fixture_app(b: Backend) -> Fixture {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let channel = app.web_push_channel(&sk).await;
    let (_, session) = app.post("/v1/sessions", &sk, json!({"user": "alice"})).await;
    let session = session["session_id"].as_str().unwrap().to_string();
    let (_, sub) = app
        .post(
            "/v1/me/subscriptions",
            &session,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/fixture")}),
        )
        .await;
    let (_, key) = app.post("/v1/keys", &sk, json!({"kind": "public"})).await;
    Fixture {
        sk,
        session,
        channel,
        sub: sub["id"].as_i64().unwrap(),
        key: key["id"].as_str().unwrap().to_string(),
        app,
    }
}

impl Fixture {
    fn path(&self, template: &str) -> String {
        template.replace("{sub}", &self.sub.to_string()).replace("{channel}", &self.channel).replace("{key}", &self.key)
    }

    fn token_for(&self, path: &str) -> &str {
        if path.starts_with("/v1/me/") { &self.session } else { &self.sk }
    }
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

async fn credentials_are_required_everywhere(b: Backend) {
    let f = fixture_app(b).await;
    let before = f.app.snapshot().await;
    let (_, revoked) = f.app.post("/v1/keys", &f.sk, json!({"kind": "secret"})).await;
    f.app.call(Method::DELETE, &format!("/v1/keys/{}", revoked["id"].as_str().unwrap()), Some(&f.sk), None).await;
    let before = {
        let _ = before;
        f.app.snapshot().await
    };
    let revoked = revoked["key"].as_str().unwrap().to_string();
    let (_, expired) = f.app.post("/v1/sessions", &f.sk, json!({"user": "alice", "ttl_seconds": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = expired["session_id"].as_str().unwrap().to_string();
    let before = {
        let _ = before;
        f.app.snapshot().await
    };
    let mut all: Vec<(&str, &str)> = ENDPOINTS.to_vec();
    all.extend([
        ("POST", "/v1/me/subscriptions"),
        ("GET", "/v1/me/subscriptions"),
        ("GET", "/v1/me/subscriptions/{sub}"),
    ]);
    for (m, template) in all {
        let path = f.path(template);
        let body = matches!(m, "POST" | "PUT" | "PATCH").then(|| json!({}));
        for token in
            [None, Some("sk_not-a-real-key"), Some(revoked.as_str()), Some(expired.as_str()), Some("ses_forged")]
        {
            let got = f.app.call(method(m), &path, token, body.clone()).await;
            assert_error(&got, 401, "unauthenticated");
        }
    }
    assert_eq!(before, f.app.snapshot().await);
}

async fn malformed_json_and_wrong_types(b: Backend) {
    let f = fixture_app(b).await;
    let before = f.app.snapshot().await;
    for (m, template) in BODY_ENDPOINTS {
        let path = f.path(template);
        let token = f.token_for(&path).to_string();
        for raw in ["{", "[1,2]", "\"text\"", "{\"a\":}", "null"] {
            let got = f.app.call_raw(method(m), &path, Some(&token), raw).await;
            assert_error(&got, 400, "bad_request");
            assert_eq!(got.1["error"]["details"]["reason"], "invalid_json", "{m} {path} {raw}");
        }
    }
    let wrong_types: &[(&str, &str, Value, &str)] = &[
        ("POST", "/v1/keys", json!({"kind": 5}), "kind"),
        ("POST", "/v1/sessions", json!({"user": ["a"]}), "user"),
        ("POST", "/v1/sessions", json!({"user": "a", "ttl_seconds": "soon"}), "ttl_seconds"),
        ("POST", "/v1/channels", json!({"name": 1, "type": "web_push"}), "name"),
        ("PATCH", "/v1/channels/{channel}", json!({"is_default": "yes"}), "is_default"),
        ("PUT", "/v1/users/alice", json!({"properties": "x"}), "properties"),
        (
            "POST",
            "/v1/users/alice/subscriptions",
            json!({"settings": {"endpoint": 5, "p256dh": P256DH, "auth": AUTH}}),
            "settings.endpoint",
        ),
        (
            "POST",
            "/v1/users/alice/subscriptions",
            json!({"settings": web_push_settings("https://fcm.googleapis.com/x"), "topics": "news"}),
            "topics",
        ),
        ("PATCH", "/v1/subscriptions/{sub}", json!({"muted": "very"}), "muted"),
        ("POST", "/v1/me/subscriptions", json!({"settings": "https://x"}), "settings"),
    ];
    for (m, template, body, field) in wrong_types {
        let path = f.path(template);
        let got = f.app.call(method(m), &path, Some(f.token_for(&path)), Some(body.clone())).await;
        assert_field(&got, field, "invalid_type");
    }
    let missing: &[(&str, &str, Value, &str)] = &[
        ("POST", "/v1/keys", json!({}), "kind"),
        ("POST", "/v1/signing-keys", json!({"algorithm": "RS256"}), "public_key_pem"),
        ("POST", "/v1/sessions", json!({}), "user"),
        ("POST", "/v1/channels", json!({"name": "x"}), "type"),
        ("POST", "/v1/users/alice/subscriptions", json!({}), "settings"),
        (
            "POST",
            "/v1/users/alice/subscriptions",
            json!({"settings": {"endpoint": "https://fcm.googleapis.com/x", "auth": AUTH}}),
            "settings.p256dh",
        ),
        (
            "POST",
            "/v1/me/subscriptions",
            json!({"settings": {"endpoint": "https://fcm.googleapis.com/x", "p256dh": P256DH}}),
            "settings.auth",
        ),
    ];
    for (m, template, body, field) in missing {
        let path = f.path(template);
        let got = f.app.call(method(m), &path, Some(f.token_for(&path)), Some(body.clone())).await;
        assert_field(&got, field, "required");
    }
    assert_eq!(before, f.app.snapshot().await);
}

async fn limits_and_web_push_keys(b: Backend) {
    let f = fixture_app(b).await;
    let before = f.app.snapshot().await;
    let long_endpoint = format!("https://fcm.googleapis.com/fcm/send/{}", "e".repeat(1000));
    let off_curve = {
        let mut p = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, P256DH).unwrap();
        p[64] ^= 0x55;
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p)
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"endpoint": long_endpoint, "p256dh": P256DH, "auth": AUTH}), "settings.endpoint", "too_long"),
        (
            json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": "B".repeat(256), "auth": AUTH}),
            "settings.p256dh",
            "too_long",
        ),
        (
            json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": P256DH, "auth": "A".repeat(256)}),
            "settings.auth",
            "too_long",
        ),
        (
            json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": off_curve, "auth": AUTH}),
            "settings.p256dh",
            "invalid",
        ),
        (
            json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": &P256DH[..80], "auth": AUTH}),
            "settings.p256dh",
            "invalid",
        ),
        (
            json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": "!!!", "auth": AUTH}),
            "settings.p256dh",
            "invalid",
        ),
        (
            json!({"endpoint": "https://fcm.googleapis.com/x", "p256dh": P256DH, "auth": "AAAAAAAAAAAAAAAAAAAA"}),
            "settings.auth",
            "invalid",
        ),
        (
            json!({"endpoint": "http://fcm.googleapis.com/x", "p256dh": P256DH, "auth": AUTH}),
            "settings.endpoint",
            "invalid",
        ),
        (
            json!({"endpoint": "https://169.254.169.254/latest", "p256dh": P256DH, "auth": AUTH}),
            "settings.endpoint",
            "invalid",
        ),
        (json!({"endpoint": "not a url", "p256dh": P256DH, "auth": AUTH}), "settings.endpoint", "invalid"),
    ];
    for (settings, field, reason) in cases {
        for path in ["/v1/users/alice/subscriptions", "/v1/me/subscriptions"] {
            let got = f.app.post(path, f.token_for(path), json!({"settings": settings})).await;
            assert_field(&got, field, reason);
        }
    }
    let long_user = "u".repeat(256);
    assert_field(
        &f.app
            .post(
                &format!("/v1/users/{long_user}/subscriptions"),
                &f.sk,
                json!({"settings": web_push_settings("https://fcm.googleapis.com/x")}),
            )
            .await,
        "user",
        "too_long",
    );
    assert_field(
        &f.app.call(Method::PUT, &format!("/v1/users/{long_user}"), Some(&f.sk), None).await,
        "user",
        "too_long",
    );
    let many_topics: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    assert_field(
        &f.app
            .post(
                "/v1/users/alice/subscriptions",
                &f.sk,
                json!({"settings": web_push_settings("https://fcm.googleapis.com/x"), "topics": many_topics}),
            )
            .await,
        "topics",
        "too_long",
    );
    assert_field(
        &f.app.call(Method::PUT, &format!("/v1/subscriptions/{}/topics/bad%20topic", f.sub), Some(&f.sk), None).await,
        "topic",
        "invalid",
    );
    assert_field(
        &f.app
            .call(
                Method::PATCH,
                &format!("/v1/subscriptions/{}", f.sub),
                Some(&f.sk),
                Some(json!({"status": "zombie"})),
            )
            .await,
        "status",
        "invalid",
    );
    assert_field(
        &f.app
            .post(
                "/v1/users/alice/subscriptions",
                &f.sk,
                json!({"settings": web_push_settings("https://fcm.googleapis.com/x"), "environment": "staging"}),
            )
            .await,
        "environment",
        "invalid",
    );
    // Oversized bodies are refused before parsing.
    let huge = json!({"properties": {"blob": "x".repeat(70_000)}});
    assert_error(&f.app.call(Method::PUT, "/v1/users/alice", Some(&f.sk), Some(huge)).await, 413, "payload_too_large");
    assert_eq!(before, f.app.snapshot().await);
}

async fn unknown_ids_and_bad_params(b: Backend) {
    let f = fixture_app(b).await;
    let before = f.app.snapshot().await;
    let not_found = [
        (Method::GET, "/v1/subscriptions/999999".to_string()),
        (Method::PATCH, "/v1/subscriptions/999999".into()),
        (Method::DELETE, "/v1/subscriptions/999999".into()),
        (Method::PUT, "/v1/subscriptions/999999/topics/x".into()),
        (Method::GET, "/v1/channels/00000000-0000-0000-0000-000000000000".into()),
        (Method::PATCH, "/v1/channels/nope".into()),
        (Method::DELETE, "/v1/channels/nope".into()),
        (Method::DELETE, "/v1/keys/nope".into()),
        (Method::DELETE, "/v1/signing-keys/nope".into()),
        (Method::DELETE, "/v1/sessions/ses_nope".into()),
        (Method::GET, "/v1/users/nobody".into()),
        (Method::DELETE, "/v1/users/nobody".into()),
        (Method::GET, "/v1/no-such-route".into()),
    ];
    for (m, path) in not_found {
        let body = matches!(m, Method::PATCH).then(|| json!({}));
        let got = f.app.call(m, &path, Some(&f.sk), body).await;
        assert_error(&got, 404, "not_found");
    }
    let got = f
        .app
        .post(
            "/v1/users/alice/subscriptions",
            &f.sk,
            json!({"channel_id": "nope", "settings": web_push_settings("https://fcm.googleapis.com/x")}),
        )
        .await;
    assert_error(&got, 404, "not_found");
    assert_eq!(got.1["error"]["details"]["resource"], "channel");
    for path in [
        "/v1/subscriptions/abc",
        "/v1/users/alice/subscriptions?limit=lots",
        "/v1/users/alice/subscriptions?cursor=zz",
        "/v1/users/alice/subscriptions?status=gone",
    ] {
        let got = f.app.get(path, &f.sk).await;
        assert_error(&got, 400, "bad_request");
        assert_eq!(got.1["error"]["details"]["reason"], "invalid_param", "{path}");
    }
    assert_eq!(before, f.app.snapshot().await);
}

both_backends!(
    credentials_are_required_everywhere,
    malformed_json_and_wrong_types,
    limits_and_web_push_keys,
    unknown_ids_and_bad_params
);
