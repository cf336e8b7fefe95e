//! notiflows' *Add a channel subscription* (seeds/001) replayed against `/compat/notiflows`: the
//! example request and response, user keys (RS256, `exp` optional but honoured) and dev mode,
//! the documented error format field by field, settings validated per channel type, the list and
//! delete of the user's own subscriptions, then the native view and real deliveries.

use herald_providers::mock::{MockApns, MockApnsConfig, fixtures};
use herald_providers::webpush::testing::UaKeyPair;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::MockPush;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct Setup {
    app: TestApp,
    account: i64,
    sk: String,
    pk: String,
    kid: String,
    channel: String,
    mock: MockPush,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (account, sk, pk) = app.account(false).await;
    let channel = app.web_push_channel(&sk).await;
    let (status, key) = app
        .post("/v1/signing-keys", &sk, json!({"algorithm": "RS256", "public_key_pem": fixture("rsa_public.pem")}))
        .await;
    assert_eq!(status, 201, "{key}");
    let kid = key["id"].as_str().unwrap().to_string();
    Setup { app, account, sk, pk, kid, channel, mock: MockPush::start().await }
}

impl Setup {
    /// A user key for `sub` as the page recommends it: RS256, `iat` and `exp`.
    fn user_key(&self, sub: &str) -> String {
        self.sign(json!({"sub": sub, "iat": now(), "exp": now() + 300}))
    }

    fn sign(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap()).unwrap()
    }

    fn path(&self, channel: &str) -> String {
        format!("/compat/notiflows/user/v1/channels/{channel}/subscriptions")
    }

    async fn call(&self, method: Method, path: &str, user_key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let headers = [("x-notiflows-api-key", self.pk.as_str()), ("x-notiflows-user-key", user_key)];
        self.app.call_headers(method, path, &headers, body).await
    }

    async fn add(&self, user: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &self.path(&self.channel), &self.user_key(user), Some(body)).await
    }
}

/// The example body, for a browser with `ua`'s keys at `endpoint`.
fn example(endpoint: &str, ua: &UaKeyPair) -> Value {
    json!({"identifier": endpoint, "settings": {"endpoint": endpoint, "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()}})
}

/// Checks the documented response shape exactly; returns the id.
#[track_caller]
fn assert_subscription(body: &Value, channel: &str, identifier: &str, settings: &Value) -> String {
    let obj = body.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["channel_id", "created_at", "id", "identifier", "settings", "updated_at"], "{body}");
    assert_eq!(body["channel_id"], channel);
    assert_eq!(body["identifier"], identifier);
    assert_eq!(&body["settings"], settings);
    for stamp in ["created_at", "updated_at"] {
        let text = body[stamp].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
    }
    body["id"].as_str().expect("the id is a string").to_string()
}

#[track_caller]
fn assert_rich_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_error(got, status, code);
    let error = &got.1["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
    assert!(error["type"].as_str().is_some_and(|t| t.ends_with(&format!("/docs/errors#{code}"))), "{}", got.1);
    assert!(error["details"].is_object(), "{}", got.1);
}

async fn the_example_creates_then_updates_in_place(b: Backend) {
    let s = setup(b).await;
    let endpoint = s.mock.endpoint("nf-1");
    let first = UaKeyPair::generate();
    let body = example(&endpoint, &first);
    let (status, created) = s.add("alice", body.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = assert_subscription(&created, &s.channel, &endpoint, &body["settings"]);

    // Same identifier, new keys: 200, updated in place.
    let second = UaKeyPair::generate();
    let body = example(&endpoint, &second);
    let (status, updated) = s.add("alice", body.clone()).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(assert_subscription(&updated, &s.channel, &endpoint, &body["settings"]), id);
    assert_eq!(updated["created_at"], created["created_at"]);

    let (_, native) = s.app.get("/v1/users/alice/subscriptions", &s.sk).await;
    let list = native["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{native}");
    assert_eq!(list[0]["id"].to_string(), id);
    assert_eq!(
        (list[0]["status"].as_str(), list[0]["settings"]["p256dh"].as_str()),
        (Some("active"), Some(&*second.p256dh_b64()))
    );

    let sent = s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "notiflows", "body": "hi"})).await;
    let n = s.app.wait_done(&s.sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    let received = s.mock.received();
    assert_eq!(received[0].path, "/push/nf-1");
    let payload: Value = serde_json::from_slice(&second.decrypt(&received[0].body).unwrap()).unwrap();
    assert_eq!((payload["title"].as_str(), payload["body"].as_str()), (Some("notiflows"), Some("hi")));
}

async fn user_keys_and_dev_mode(b: Backend) {
    let s = setup(b).await;
    let ua = UaKeyPair::generate();
    let body = example(&s.mock.endpoint("keys"), &ua);
    let path = s.path(&s.channel);
    // `exp` is recommended, not required; `iat` alone is fine.
    let got = s.call(Method::POST, &path, &s.sign(json!({"sub": "alice", "iat": now()})), Some(body.clone())).await;
    assert_eq!(got.0, 201, "{}", got.1);
    // An expired one is refused, as is one without `sub`, one signed by another key, and garbage.
    let refused = [
        s.sign(json!({"sub": "alice", "exp": now() - 600})),
        s.sign(json!({"iat": now()})),
        {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(s.kid.clone());
            let key = EncodingKey::from_rsa_pem(fixture("rsa2_private.pem").as_bytes()).unwrap();
            encode(&header, &json!({"sub": "alice"}), &key).unwrap()
        },
        "not-a-jwt".to_string(),
    ];
    let before = s.app.snapshot().await;
    for token in refused {
        assert_rich_error(&s.call(Method::POST, &path, &token, Some(body.clone())).await, 401, "unauthenticated");
    }
    // No API key; a secret key where the public one belongs; a plain user id outside dev mode.
    let user_key = s.user_key("alice");
    let got = s.app.call_headers(Method::POST, &path, &[("x-notiflows-user-key", &user_key)], Some(body.clone())).await;
    assert_rich_error(&got, 401, "unauthenticated");
    let got = s
        .app
        .call_headers(
            Method::POST,
            &path,
            &[("x-notiflows-api-key", &s.sk), ("x-notiflows-user-key", &user_key)],
            Some(body.clone()),
        )
        .await;
    assert_rich_error(&got, 403, "forbidden");
    let got = s
        .app
        .call_headers(
            Method::POST,
            &path,
            &[("x-notiflows-api-key", &s.pk), ("x-notiflows-user-id", "alice")],
            Some(body.clone()),
        )
        .await;
    assert_rich_error(&got, 401, "unauthenticated");
    assert_eq!(before, s.app.snapshot().await, "refused requests store nothing");

    // Dev mode: the plain user id works.
    let (dev_account, dev_sk, dev_pk) = s.app.account(true).await;
    let dev_channel = s.app.web_push_channel(&dev_sk).await;
    let got = s
        .app
        .call_headers(
            Method::POST,
            &s.path(&dev_channel),
            &[("x-notiflows-api-key", &dev_pk), ("x-notiflows-user-id", "dev-user")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(got.0, 201, "{}", got.1);
    let (_, sub) = s.app.get(&format!("/v1/subscriptions/{}", got.1["id"].as_str().unwrap()), &dev_sk).await;
    assert_eq!(sub["user"], "dev-user");
    assert_ne!(dev_account, s.account);
}

async fn errors_in_the_documented_format(b: Backend) {
    let s = setup(b).await;
    let key = s.user_key("alice");
    let ua = UaKeyPair::generate();
    let body = example(&s.mock.endpoint("err"), &ua);

    // The page's own example id is not a UUID: 400 invalid_uuid.
    let got = s.call(Method::POST, &s.path("01HQXYZ123456789ABCDEFGHIJ"), &key, Some(body.clone())).await;
    assert_rich_error(&got, 400, "bad_request");
    assert_eq!(got.1["error"]["details"], json!({"reason": "invalid_uuid", "param": "channel_id"}));
    // A UUID that is no channel of this account: 404 with resource and id.
    let unknown = "bbe8aa76-a4bb-46f6-a785-df8e831cc459";
    let got = s.call(Method::POST, &s.path(unknown), &key, Some(body.clone())).await;
    assert_rich_error(&got, 404, "not_found");
    assert_eq!(got.1["error"]["details"], json!({"resource": "channel", "id": unknown}));
    assert_eq!(got.1["error"]["message"], "Channel not found");
    // Field errors.
    let mut bad = body.clone();
    bad["settings"]["p256dh"] = json!("BOxxx...");
    bad["settings"]["auth"] = json!("xxx...");
    let got = s.call(Method::POST, &s.path(&s.channel), &key, Some(bad)).await;
    assert_field(&got, "settings.p256dh", "invalid");
    assert_field(&got, "settings.auth", "invalid");
    let got = s.call(Method::POST, &s.path(&s.channel), &key, Some(json!({"identifier": "x"}))).await;
    assert_field(&got, "settings", "required");
    for field in got.1["error"]["details"]["fields"].as_array().unwrap() {
        assert!(field["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let headers = [("x-notiflows-api-key", s.pk.as_str()), ("x-notiflows-user-key", key.as_str())];
    let res = s
        .app
        .http
        .post(format!("{}{}", s.app.base, s.path(&s.channel)))
        .header(headers[0].0, headers[0].1)
        .header(headers[1].0, headers[1].1)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let got = (res.status(), res.json::<Value>().await.unwrap());
    assert_rich_error(&got, 400, "bad_request");
    assert_eq!(got.1["error"]["details"]["reason"], "invalid_json");
    assert_eq!(got.1["error"]["request_id"], request_id, "the body quotes the x-request-id header");
    assert_eq!(s.app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await, 0);

    // A paused account: 403.
    s.app
        .call(
            Method::PATCH,
            &format!("/admin/v1/accounts/{}", s.account),
            Some(ADMIN_TOKEN),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_rich_error(&s.add("alice", body).await, 403, "forbidden");
}

async fn settings_follow_the_channel_type(b: Backend) {
    let s = setup(b).await;
    let apns = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let (status, channel) = s
        .app
        .post(
            "/v1/channels",
            &s.sk,
            json!({"name": "ios", "type": "apns", "config": fixtures::apns_channel_config(apns.base_url())}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_str().unwrap().to_string();
    let key = s.user_key("alice");
    // Web Push settings on an APNs channel are refused; a token is accepted.
    let ua = UaKeyPair::generate();
    let got = s.call(Method::POST, &s.path(&channel), &key, Some(example(&s.mock.endpoint("w"), &ua))).await;
    assert_field(&got, "settings.token", "required");
    let token = fixtures::TEST_DEVICE_TOKEN;
    let body = json!({"identifier": token, "settings": {"token": token}});
    let (status, created) = s.call(Method::POST, &s.path(&channel.to_uppercase()), &key, Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_subscription(&created, &channel, token, &json!({"token": token}));

    let sent = s.app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "to iOS"})).await;
    let n = s.app.wait_done(&s.sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    let request = &apns.requests()[0];
    assert_eq!(request.path, format!("/3/device/{token}"));
    assert_eq!(request.header("apns-topic"), Some(fixtures::TEST_BUNDLE_ID));
    assert_eq!(request.json().unwrap()["aps"]["alert"]["title"], "to iOS");
}

async fn list_and_delete_own_subscriptions(b: Backend) {
    let s = setup(b).await;
    let other_channel = {
        let (_, c) = s
            .app
            .post(
                "/v1/channels",
                &s.sk,
                json!({"name": "web2", "type": "web_push", "config": {"subject": "mailto:a@b.c"}}),
            )
            .await;
        c["id"].as_str().unwrap().to_string()
    };
    let ua = UaKeyPair::generate();
    let mut ids = Vec::new();
    for name in ["a1", "a2"] {
        let (status, sub) = s.add("alice", example(&s.mock.endpoint(name), &ua)).await;
        assert_eq!(status, 201);
        ids.push(sub["id"].as_str().unwrap().to_string());
    }
    let (_, bobs) = s.add("bob", example(&s.mock.endpoint("b1"), &ua)).await;
    let alice_key = s.user_key("alice");
    let (_, elsewhere) =
        s.call(Method::POST, &s.path(&other_channel), &alice_key, Some(example(&s.mock.endpoint("a3"), &ua))).await;

    let (status, list) = s.call(Method::GET, &s.path(&s.channel), &alice_key, None).await;
    assert_eq!(status, 200, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(), ids);
    assert_subscription(
        &data[0],
        &s.channel,
        &s.mock.endpoint("a1"),
        &example(&s.mock.endpoint("a1"), &ua)["settings"],
    );
    assert_eq!(list["next_cursor"], Value::Null);
    let (_, page) = s.call(Method::GET, &format!("{}?limit=1", s.path(&s.channel)), &alice_key, None).await;
    assert_eq!((page["data"].as_array().unwrap().len(), page["next_cursor"].as_str()), (1, Some(ids[0].as_str())));

    // Another user's subscription, one on another channel, and a non-number are all 404.
    let delete = |channel: &str, id: &str| format!("{}/{id}", s.path(channel));
    for path in [
        delete(&s.channel, bobs["id"].as_str().unwrap()),
        delete(&s.channel, elsewhere["id"].as_str().unwrap()),
        delete(&s.channel, "abc"),
    ] {
        assert_rich_error(&s.call(Method::DELETE, &path, &alice_key, None).await, 404, "not_found");
    }
    let got = s.call(Method::DELETE, &delete(&s.channel, &ids[0]), &alice_key, None).await;
    assert_eq!((got.0.as_u16(), &got.1), (204, &Value::Null));
    let (_, list) = s.call(Method::GET, &s.path(&s.channel), &alice_key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_error(&s.app.get(&format!("/v1/subscriptions/{}", ids[0]), &s.sk).await, 404, "not_found");
    // Bob's is untouched.
    let (status, _) = s.app.get(&format!("/v1/subscriptions/{}", bobs["id"].as_str().unwrap()), &s.sk).await;
    assert_eq!(status, 200);
}

async fn the_users_budget_is_counted(b: Backend) {
    let s = setup(b).await;
    let admin_path = format!("/admin/v1/accounts/{}", s.account);
    s.app.call(Method::PATCH, &admin_path, Some(ADMIN_TOKEN), Some(json!({"rate_limit_per_minute": 2}))).await;
    let key = s.user_key("alice");
    for _ in 0..2 {
        assert_eq!(s.call(Method::GET, &s.path(&s.channel), &key, None).await.0, 200);
    }
    let got = s.call(Method::GET, &s.path(&s.channel), &key, None).await;
    assert_rich_error(&got, 429, "rate_limited");
    assert!(got.1["error"]["details"]["retry_after"].as_u64().is_some_and(|r| r >= 1), "{}", got.1);
    // Another user of the same key has a budget of their own.
    assert_eq!(s.call(Method::GET, &s.path(&s.channel), &s.user_key("bob"), None).await.0, 200);
}

both_backends!(
    the_example_creates_then_updates_in_place,
    user_keys_and_dev_mode,
    errors_in_the_documented_format,
    settings_follow_the_channel_type,
    list_and_delete_own_subscriptions,
    the_users_budget_is_counted
);
