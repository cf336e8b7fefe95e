//! Discord-style device endpoints (seeds/003) replayed against `/compat/discord`: register with
//! every provider (VoIP included), unregister, sync tokens and syncs across users, Discord's
//! error bodies, then the subscriptions in the native API and real deliveries through the APNs
//! (alert and `voip` to `<bundle>.voip`) and FCM mocks.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_providers::mock::{MockApns, MockApnsConfig, MockFcm, MockFcmConfig, MockRequest, fixtures};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

const DEVICE: &str = fixtures::TEST_DEVICE_TOKEN;

struct Setup {
    app: TestApp,
    account: i64,
    sk: String,
    apns: MockApns,
    fcm: MockFcm,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (account, sk, _) = app.account(false).await;
    let apns = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let fcm = MockFcm::start(MockFcmConfig::with_test_key()).await.unwrap();
    for (name, config) in
        [("apns", fixtures::apns_channel_config(apns.base_url())), ("fcm", fixtures::fcm_channel_config(&fcm))]
    {
        let (status, c) = app.post("/v1/channels", &sk, json!({"name": name, "type": name, "config": config})).await;
        assert_eq!(status, 201, "{c}");
    }
    Setup { app, account, sk, apns, fcm }
}

impl Setup {
    async fn session(&self, user: &str) -> String {
        let (status, s) = self.app.post("/v1/sessions", &self.sk, json!({"user": user})).await;
        assert_eq!(status, 201, "{s}");
        s["session_id"].as_str().unwrap().to_string()
    }

    /// Calls the surface with `Authorization: <token>` exactly as given.
    async fn call(&self, method: Method, path: &str, auth: &str, body: Option<Value>) -> (StatusCode, Value) {
        let path = format!("/compat/discord/users/@me/devices{path}");
        let headers: Vec<(&str, &str)> = if auth.is_empty() { vec![] } else { vec![("authorization", auth)] };
        self.app.call_headers(method, &path, &headers, body).await
    }

    async fn register(&self, auth: &str, body: Value) {
        let got = self.call(Method::POST, "", auth, Some(body)).await;
        assert_eq!((got.0.as_u16(), &got.1), (204, &Value::Null), "register answers 204 with no body");
    }

    async fn sync_token(&self, auth: &str) -> String {
        let (status, body) = self.call(Method::GET, "/sync-token", auth, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    async fn sync(&self, auth: &str, tokens: &[&str]) -> Value {
        let body = json!({"provider": "apns", "token": DEVICE, "push_sync_tokens": tokens});
        let (status, body) = self.call(Method::PUT, "/sync", auth, Some(body)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn subscriptions_of(&self, user: &str) -> Vec<Value> {
        let (status, list) = self.app.get(&format!("/v1/users/{user}/subscriptions"), &self.sk).await;
        assert_eq!(status, 200, "{list}");
        list["data"].as_array().unwrap().clone()
    }

    /// The status of `user`'s subscription to the shared device (`None`: has none).
    async fn device_status(&self, user: &str) -> Option<String> {
        let subs = self.subscriptions_of(user).await;
        subs.iter().find(|s| s["identifier"] == DEVICE).map(|s| s["status"].as_str().unwrap().to_string())
    }

    /// Sends to `user`; returns the number delivered.
    async fn deliver_to(&self, user: &str, title: &str) -> i64 {
        let sent = self.app.send(&self.sk, json!({"to": {"user": user}, "title": title})).await;
        let n = self.app.wait_done(&self.sk, sent["id"].as_str().unwrap()).await;
        assert_eq!(n["counts"]["failed"], 0, "{n}");
        n["counts"]["delivered"].as_i64().unwrap()
    }
}

#[track_caller]
fn assert_form_error(got: &(StatusCode, Value), field: &[&str], code: &str) {
    assert_eq!(got.0, 400, "{}", got.1);
    assert_eq!(
        (got.1["code"].as_i64(), got.1["message"].as_str()),
        (Some(50035), Some("Invalid Form Body")),
        "{}",
        got.1
    );
    let mut node = &got.1["errors"];
    for part in field {
        node = &node[*part];
    }
    let first = &node["_errors"][0];
    assert_eq!(first["code"], code, "{}", got.1);
    assert!(first["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
}

#[track_caller]
fn assert_unauthorized(got: &(StatusCode, Value)) {
    assert_eq!(got.0, 401, "{}", got.1);
    assert_eq!(got.1, json!({"message": "401: Unauthorized", "code": 0}));
}

async fn registers_every_provider_and_delivers(b: Backend) {
    let s = setup(b).await;
    let alice = s.session("alice").await;
    let voip = "f".repeat(64);
    // The raw token, as Discord clients send it.
    s.register(&alice, json!({"provider": "apns", "token": DEVICE, "voip_provider": "apns_voip", "voip_token": voip}))
        .await;
    // `Bearer` works too.
    s.register(&format!("Bearer {alice}"), json!({"provider": "gcm", "token": "fcm-token:alice-phone"})).await;
    let subs = s.subscriptions_of("alice").await;
    let view = |identifier: &str| subs.iter().find(|s| s["identifier"] == identifier).cloned().unwrap();
    let (apns, voip_sub, fcm) = (view(DEVICE), view(&voip), view("fcm-token:alice-phone"));
    assert_eq!(
        (apns["channel_type"].as_str(), apns["kind"].as_str(), apns["environment"].as_str()),
        (Some("apns"), Some("standard"), Some("production"))
    );
    assert_eq!((voip_sub["kind"].as_str(), voip_sub["environment"].as_str()), (Some("voip"), Some("production")));
    assert_eq!((fcm["channel_type"].as_str(), fcm["status"].as_str()), (Some("fcm"), Some("active")));

    assert_eq!(s.deliver_to("alice", "Incoming call").await, 3);
    assert!(s.apns.rejected().is_empty(), "{:?}", s.apns.rejected());
    let requests = s.apns.requests();
    let to = |token: &str| requests.iter().find(|r| r.path.ends_with(token)).unwrap().clone();
    let (alert, call) = (to(DEVICE), to(&voip));
    assert_eq!(
        (alert.header("apns-push-type"), alert.header("apns-topic")),
        (Some("alert"), Some(fixtures::TEST_BUNDLE_ID))
    );
    let voip_topic = format!("{}.voip", fixtures::TEST_BUNDLE_ID);
    assert_eq!((call.header("apns-push-type"), call.header("apns-topic")), (Some("voip"), Some(voip_topic.as_str())));
    let messages: Vec<Value> =
        s.fcm.requests().iter().filter(|r| r.path.ends_with("messages:send")).filter_map(MockRequest::json).collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["message"]["token"], "fcm-token:alice-phone");

    // `apns_internal` is the sandbox; `apns_internal_voip` a sandbox VoIP token; re-registering updates in place.
    let bob = s.session("bob").await;
    let sandbox = "e".repeat(64);
    s.register(&bob, json!({"provider": "apns_internal", "token": sandbox})).await;
    s.register(&bob, json!({"provider": "apns_internal_voip", "token": "d".repeat(64)})).await;
    s.register(&bob, json!({"provider": "apns_internal", "token": sandbox})).await;
    let subs = s.subscriptions_of("bob").await;
    assert_eq!(subs.len(), 2);
    assert!(subs.iter().all(|s| s["environment"] == "sandbox"), "{subs:?}");
    assert_eq!(subs.iter().filter(|s| s["kind"] == "voip").count(), 1);

    // Unregistering removes exactly that token.
    let got =
        s.call(Method::DELETE, "", &alice, Some(json!({"provider": "gcm", "token": "fcm-token:alice-phone"}))).await;
    assert_eq!((got.0.as_u16(), &got.1), (204, &Value::Null));
    assert_eq!(s.subscriptions_of("alice").await.len(), 2);
    // Unregistering what is not registered is still 204.
    assert_eq!(s.call(Method::DELETE, "", &alice, Some(json!({"provider": "gcm", "token": "nope"}))).await.0, 204);
}

async fn sync_links_users_to_one_device(b: Backend) {
    let s = setup(b).await;
    let (alice, bob, carol, dave) =
        (s.session("alice").await, s.session("bob").await, s.session("carol").await, s.session("dave").await);
    s.register(&alice, json!({"provider": "apns", "token": DEVICE})).await;
    let bob_token = s.sync_token(&bob).await;
    assert_eq!(bob_token.split('.').count(), 3, "{bob_token}");
    let dave_token = s.sync_token(&dave).await;
    assert_eq!(s.app.call(Method::DELETE, "/v1/users/dave", Some(&s.sk), None).await.0, 204);
    let (_, other_sk, _) = s.app.account(false).await;
    let (_, foreign) = s.app.post("/v1/sessions", &other_sk, json!({"user": "bob"})).await;
    let foreign_token = s.sync_token(foreign["session_id"].as_str().unwrap()).await;
    let tampered = bob_token.replacen(&bob_token[..4], "AAAA", 1);
    let expired = expired_token(&s, "bob").await;

    let got = s.sync(&alice, &[&bob_token, "garbage", &dave_token, &foreign_token, &tampered, &expired]).await;
    assert_eq!(got, json!({"invalid_push_sync_tokens": ["garbage", dave_token, foreign_token, tampered, expired]}));
    assert_eq!(
        (s.device_status("alice").await, s.device_status("bob").await),
        (Some("active".into()), Some("active".into()))
    );
    assert_eq!(s.deliver_to("alice", "for alice").await, 1);
    assert_eq!(s.deliver_to("bob", "for bob").await, 1);
    assert_eq!(
        s.apns.requests().iter().filter(|r| r.path.ends_with(DEVICE)).count(),
        2,
        "both reach the shared device"
    );

    // A plain registration by a linked user keeps the other; by anyone else it moves the device.
    s.register(&bob, json!({"provider": "apns", "token": DEVICE})).await;
    assert_eq!(s.device_status("alice").await.as_deref(), Some("active"));
    s.register(&carol, json!({"provider": "apns", "token": DEVICE})).await;
    for user in ["alice", "bob"] {
        let sub = s.subscriptions_of(user).await.into_iter().find(|x| x["identifier"] == DEVICE).unwrap();
        assert_eq!(
            (sub["status"].as_str(), sub["inactive_reason"].as_str()),
            (Some("inactive"), Some("moved")),
            "{user}"
        );
    }
    // Syncing again makes it active for the users named, and moves it from the rest.
    let got = s.sync(&bob, &[&s.sync_token(&alice).await]).await;
    assert_eq!(got, json!({"invalid_push_sync_tokens": []}));
    assert_eq!(s.device_status("alice").await.as_deref(), Some("active"));
    assert_eq!(s.device_status("bob").await.as_deref(), Some("active"));
    assert_eq!(s.device_status("carol").await.as_deref(), Some("inactive"));

    // Unregistering removes it for the caller only.
    let got = s.call(Method::DELETE, "", &bob, Some(json!({"provider": "apns", "token": DEVICE}))).await;
    assert_eq!(got.0, 204);
    assert_eq!(s.device_status("bob").await, None);
    assert_eq!(s.device_status("alice").await.as_deref(), Some("active"));
    assert_eq!(s.deliver_to("alice", "still here").await, 1);
    assert_eq!(s.deliver_to("bob", "gone").await, 0);
}

/// A sync token for `user` that expired a minute ago, signed with the deployment's secret.
async fn expired_token(s: &Setup, user: &str) -> String {
    let secret: Vec<u8> = match &s.app.db {
        DbConn::Sqlite(p) => sqlx::query_scalar("SELECT secret FROM deployment_secrets").fetch_one(p).await.unwrap(),
        DbConn::Postgres(p) => sqlx::query_scalar("SELECT secret FROM deployment_secrets").fetch_one(p).await.unwrap(),
    };
    let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60;
    let body = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(format!("{}:{user}", s.account)),
        URL_SAFE_NO_PAD.encode(expiry.to_string())
    );
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
}

async fn errors_in_discords_shape(b: Backend) {
    let s = setup(b).await;
    let alice = s.session("alice").await;
    let expiring = s.session("zed").await;
    s.app
        .execute("UPDATE sessions SET expires_at = 1 WHERE user_id = (SELECT id FROM users WHERE external_id = 'zed')")
        .await;
    let before = s.app.snapshot().await;
    // 401 on every endpoint without, or with a bad, token.
    let body = json!({"provider": "apns", "token": DEVICE});
    for auth in ["", "ses_nope", "Bearer ", "Bot abc", expiring.as_str()] {
        assert_unauthorized(&s.call(Method::POST, "", auth, Some(body.clone())).await);
        assert_unauthorized(&s.call(Method::DELETE, "", auth, Some(body.clone())).await);
        assert_unauthorized(&s.call(Method::GET, "/sync-token", auth, None).await);
        assert_unauthorized(&s.call(Method::PUT, "/sync", auth, Some(body.clone())).await);
    }

    let post = |body: Value| s.call(Method::POST, "", &alice, Some(body));
    let got = post(json!({})).await;
    assert_form_error(&got, &["provider"], "BASE_TYPE_REQUIRED");
    assert_form_error(&got, &["token"], "BASE_TYPE_REQUIRED");
    assert_eq!(got.1["errors"]["provider"]["_errors"][0]["message"], "This field is required");
    let got = post(json!({"provider": "fcm", "token": "x"})).await;
    assert_form_error(&got, &["provider"], "BASE_TYPE_CHOICES");
    assert!(got.1["errors"]["provider"]["_errors"][0]["message"].as_str().unwrap().contains("'apns_internal_voip'"));
    assert_form_error(&post(json!({"provider": "apns", "token": 7})).await, &["token"], "BASE_TYPE_STRING");
    assert_form_error(&post(json!({"provider": "apns", "token": "not-hex"})).await, &["token"], "BASE_TYPE_INVALID");
    assert_form_error(
        &post(json!({"provider": "gcm", "token": "t", "voip_token": "f".repeat(64)})).await,
        &["voip_provider"],
        "BASE_TYPE_REQUIRED",
    );
    assert_form_error(
        &post(json!({"provider": "apns", "token": DEVICE, "voip_provider": "gcm", "voip_token": "t"})).await,
        &["voip_provider"],
        "BASE_TYPE_CHOICES",
    );
    assert_form_error(
        &post(json!({"provider": "apns", "token": DEVICE, "voip_provider": "apns_voip", "voip_token": "xyz"})).await,
        &["voip_token"],
        "BASE_TYPE_INVALID",
    );
    let got = s
        .call(Method::PUT, "/sync", &alice, Some(json!({"provider": "apns", "token": DEVICE, "push_sync_tokens": "t"})))
        .await;
    assert_form_error(&got, &["push_sync_tokens"], "BASE_TYPE_ARRAY");
    let got = s
        .call(
            Method::PUT,
            "/sync",
            &alice,
            Some(json!({"provider": "apns", "token": DEVICE, "push_sync_tokens": ["a", 1]})),
        )
        .await;
    assert_form_error(&got, &["push_sync_tokens", "1"], "BASE_TYPE_STRING");
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let got = s
        .call(
            Method::PUT,
            "/sync",
            &alice,
            Some(json!({"provider": "apns", "token": DEVICE, "push_sync_tokens": many})),
        )
        .await;
    assert_form_error(&got, &["push_sync_tokens"], "BASE_TYPE_BAD_LENGTH");
    let got = s
        .app
        .call_headers(
            Method::POST,
            "/compat/discord/users/@me/devices",
            &[("authorization", &alice), ("content-type", "application/json")],
            None,
        )
        .await;
    assert_form_error(&got, &["provider"], "BASE_TYPE_REQUIRED");
    let res = s
        .app
        .http
        .post(format!("{}/compat/discord/users/@me/devices", s.app.base))
        .header("authorization", &alice)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"code": 50109, "message": "The request body contains invalid JSON."})
    );
    assert_eq!(before, s.app.snapshot().await, "refused requests store nothing");

    // An account without the provider's channel.
    let (bare_id, bare_sk, _) = s.app.account(false).await;
    let (_, bare) = s.app.post("/v1/sessions", &bare_sk, json!({"user": "eve"})).await;
    let got = s
        .call(Method::POST, "", bare["session_id"].as_str().unwrap(), Some(json!({"provider": "gcm", "token": "t"})))
        .await;
    assert_form_error(&got, &["provider"], "PUSH_PROVIDER_NOT_CONFIGURED");

    // A paused account.
    s.app
        .call(
            Method::PATCH,
            &format!("/admin/v1/accounts/{bare_id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"status": "paused"})),
        )
        .await;
    let got = s.call(Method::GET, "/sync-token", bare["session_id"].as_str().unwrap(), None).await;
    assert_eq!((got.0.as_u16(), &got.1), (403, &json!({"message": "Missing Access", "code": 50001})));
}

async fn the_sessions_budget_is_counted(b: Backend) {
    let s = setup(b).await;
    let alice = s.session("alice").await;
    let admin_path = format!("/admin/v1/accounts/{}", s.account);
    s.app.call(Method::PATCH, &admin_path, Some(ADMIN_TOKEN), Some(json!({"rate_limit_per_minute": 2}))).await;
    for _ in 0..2 {
        s.sync_token(&alice).await;
    }
    let res = s
        .app
        .http
        .get(format!("{}/compat/discord/users/@me/devices/sync-token", s.app.base))
        .header("authorization", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}));
}

both_backends!(
    registers_every_provider_and_delivers,
    sync_links_users_to_one_device,
    errors_in_discords_shape,
    the_sessions_budget_is_counted
);
