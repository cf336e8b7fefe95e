//! doBoard's `push_subscribe` (seeds/000) replayed against `/compat/doboard`: the GET example,
//! POST as form and JSON, every documented error with its exact body, Herald's decisions where
//! the page is silent, then the subscription in the native API and a real, decrypted delivery.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_providers::webpush::testing::UaKeyPair;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::MockPush;

struct Setup {
    app: TestApp,
    account: i64,
    sk: String,
    session: String,
    mock: MockPush,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (account, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let session = session(&app, &sk, "alice").await;
    Setup { app, account, sk, session, mock: MockPush::start().await }
}

async fn session(app: &TestApp, sk: &str, user: &str) -> String {
    let (status, s) = app.post("/v1/sessions", sk, json!({"user": user})).await;
    assert_eq!(status, 201, "{s}");
    s["session_id"].as_str().unwrap().to_string()
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

impl Setup {
    fn path(&self) -> String {
        format!("/compat/doboard/{}/push_subscribe", self.account)
    }

    async fn get(&self, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        self.app.call(Method::GET, &format!("{}?{}", self.path(), query(pairs)), None, None).await
    }

    async fn post_form(&self, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self
            .app
            .http
            .post(format!("{}{}", self.app.base, self.path()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(query(pairs))
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    async fn post_json(&self, body: Value) -> (StatusCode, Value) {
        self.app.call(Method::POST, &self.path(), None, Some(body)).await
    }

    /// The parameters of a browser subscription at `name` on the mock.
    fn browser<'a>(&'a self, ua: &'a UaKeyPair, endpoint: &'a str) -> Vec<(&'a str, String)> {
        vec![
            ("session_id", self.session.clone()),
            ("endpoint", endpoint.to_string()),
            ("key_p256dh", ua.p256dh_b64()),
            ("key_auth", ua.auth_b64()),
        ]
    }

    async fn subscriptions(&self) -> i64 {
        self.app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await
    }
}

/// Request parameters, in order.
type Params<'a> = Vec<(&'a str, &'a str)>;

fn pairs<'a>(v: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn success_id(got: &(StatusCode, Value)) -> i64 {
    assert_eq!(got.0, 200, "{}", got.1);
    let id = got.1["data"]["push_subscription_id"].as_i64().expect("push_subscription_id is an int");
    assert_eq!(got.1, json!({"data": {"push_subscription_id": id, "operation_status": "SUCCESS"}}));
    id
}

#[track_caller]
fn assert_failed(got: &(StatusCode, Value), error_no: u16, message: &str) {
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1, json!({"data": {"operation_status": "FAILED", "error_no": error_no, "error_message": message}}));
}

#[track_caller]
fn assert_unauthorized(got: &(StatusCode, Value)) {
    assert_eq!(got.0, 401, "{}", got.1);
    assert_eq!(got.1, json!({"data": {"operation_status": "FAILED", "error_message": "Unauthorized"}}));
}

/// Sends to `user` and returns the decrypted payload the mock received last.
async fn deliver(s: &Setup, user: &str, ua: &UaKeyPair, title: &str) -> Value {
    let sent = s.app.send(&s.sk, json!({"to": {"user": user}, "title": title, "body": "from doBoard"})).await;
    let n = s.app.wait_done(&s.sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    let received = s.mock.received();
    let plaintext = ua.decrypt(&received.last().unwrap().body).expect("the browser's keys decrypt the push");
    serde_json::from_slice(&plaintext).unwrap()
}

async fn get_example_subscribes_and_delivers(b: Backend) {
    let s = setup(b).await;
    let ua = UaKeyPair::generate();
    let endpoint = s.mock.endpoint("doboard-1");
    let id = success_id(&s.get(&pairs(&s.browser(&ua, &endpoint))).await);

    let (status, sub) = s.app.get(&format!("/v1/subscriptions/{id}"), &s.sk).await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["user"], "alice");
    assert_eq!(sub["channel_type"], "web_push");
    assert_eq!(sub["identifier"], endpoint);
    assert_eq!(sub["status"], "active");
    // The auth secret is stored (delivery needs it) but never shown.
    assert_eq!(sub["settings"], json!({"endpoint": endpoint, "p256dh": ua.p256dh_b64()}));

    let payload = deliver(&s, "alice", &ua, "Hello").await;
    assert_eq!((payload["title"].as_str(), payload["body"].as_str()), (Some("Hello"), Some("from doBoard")));
    assert_eq!(s.mock.received()[0].path, "/push/doboard-1");
}

async fn post_form_and_json_upsert_and_reactivate(b: Backend) {
    let s = setup(b).await;
    let endpoint = s.mock.endpoint("doboard-2");
    let first = UaKeyPair::generate();
    let id = success_id(&s.post_form(&pairs(&s.browser(&first, &endpoint))).await);
    let (status, _) = s
        .app
        .call(Method::PATCH, &format!("/v1/subscriptions/{id}"), Some(&s.sk), Some(json!({"status": "inactive"})))
        .await;
    assert_eq!(status, 200);

    // The same endpoint again, with new keys, as JSON: the same subscription, reactivated, keys updated.
    let second = UaKeyPair::generate();
    let body: serde_json::Map<String, Value> =
        s.browser(&second, &endpoint).into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect();
    assert_eq!(success_id(&s.post_json(Value::Object(body)).await), id);
    let (_, sub) = s.app.get(&format!("/v1/subscriptions/{id}"), &s.sk).await;
    assert_eq!(
        (sub["status"].as_str(), sub["settings"]["p256dh"].as_str()),
        (Some("active"), Some(&*second.p256dh_b64()))
    );
    assert_eq!(s.subscriptions().await, 1);

    // Session in the query, subscription in a form body.
    let third = UaKeyPair::generate();
    let path = format!("{}?session_id={}", s.path(), s.session);
    let form = query(&[("endpoint", &endpoint), ("key_p256dh", &third.p256dh_b64()), ("key_auth", &third.auth_b64())]);
    let res = s
        .app
        .http
        .post(format!("{}{path}", s.app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(success_id(&(res.status(), res.json().await.unwrap())), id);

    let payload = deliver(&s, "alice", &third, "Upserted").await;
    assert_eq!(payload["title"], "Upserted");
}

async fn sessions_are_checked_before_anything(b: Backend) {
    let s = setup(b).await;
    let ua = UaKeyPair::generate();
    let endpoint = s.mock.endpoint("x");
    let mut params = s.browser(&ua, &endpoint);
    params.remove(0);
    // Missing, empty and unknown sessions.
    assert_unauthorized(&s.get(&pairs(&params)).await);
    assert_unauthorized(&s.get(&[("session_id", ""), ("endpoint", &endpoint)]).await);
    assert_unauthorized(&s.get(&[("session_id", "ses_unknown"), ("endpoint", "")]).await);
    // A session of another account, for this account's path.
    let (_, other_sk, _) = s.app.account(false).await;
    let foreign = session(&s.app, &other_sk, "alice").await;
    assert_unauthorized(&s.get(&[("session_id", &foreign), ("endpoint", &endpoint)]).await);
    // This account's session on a path naming another (or no) account.
    for account in ["999999", "acme"] {
        let path = format!("/compat/doboard/{account}/push_subscribe?session_id={}", s.session);
        assert_unauthorized(&s.app.call(Method::GET, &path, None, None).await);
    }
    // An expired session.
    let expiring = session(&s.app, &s.sk, "bob").await;
    s.app.execute("UPDATE sessions SET expires_at = 1").await;
    assert_unauthorized(&s.post_json(json!({"session_id": expiring, "endpoint": endpoint})).await);
    assert_eq!(s.subscriptions().await, 0, "a refused request stores nothing");
}

async fn validation_errors_in_the_documented_order(b: Backend) {
    let s = setup(b).await;
    let ua = UaKeyPair::generate();
    let (p256dh, auth) = (ua.p256dh_b64(), ua.auth_b64());
    let ok_endpoint = s.mock.endpoint("ok");
    let long_endpoint = format!("{}/{}", s.mock.base, "e".repeat(1025));
    let long_key = "A".repeat(256);
    let sid = s.session.as_str();
    let cases: Vec<(Params, u16, &str)> = vec![
        (vec![("session_id", sid), ("key_p256dh", &p256dh), ("key_auth", &auth)], 8501, "endpoint is required"),
        (vec![("session_id", sid), ("endpoint", ""), ("key_p256dh", &long_key)], 8501, "endpoint is required"),
        (vec![("session_id", sid), ("endpoint", &ok_endpoint), ("key_auth", &auth)], 8502, "key_p256dh is required"),
        (vec![("session_id", sid), ("endpoint", &long_endpoint), ("key_p256dh", "")], 8502, "key_p256dh is required"),
        (vec![("session_id", sid), ("endpoint", &ok_endpoint), ("key_p256dh", &p256dh)], 8503, "key_auth is required"),
        (
            vec![("session_id", sid), ("endpoint", &long_endpoint), ("key_p256dh", &long_key), ("key_auth", &auth)],
            8504,
            "endpoint is too long",
        ),
        (
            vec![("session_id", sid), ("endpoint", &ok_endpoint), ("key_p256dh", &long_key), ("key_auth", &long_key)],
            8505,
            "key_p256dh is too long",
        ),
        (
            vec![("session_id", sid), ("endpoint", &ok_endpoint), ("key_p256dh", &p256dh), ("key_auth", &long_key)],
            8506,
            "key_auth is too long",
        ),
    ];
    for (params, error_no, message) in &cases {
        assert_failed(&s.get(params).await, *error_no, message);
        assert_failed(&s.post_form(params).await, *error_no, message);
    }
    // JSON numbers are text to doBoard: a number is a (too short, invalid) key, not a missing one.
    let got =
        s.post_json(json!({"session_id": sid, "endpoint": ok_endpoint, "key_p256dh": p256dh, "key_auth": 5})).await;
    assert_failed(&got, 8509, "key_auth is invalid");
    assert_eq!(s.subscriptions().await, 0, "a rejected request stores nothing");

    // 1024 characters is still fine.
    let path = "p".repeat(1024 - s.mock.endpoint("").len());
    let longest = s.mock.endpoint(&path);
    assert_eq!(longest.len(), 1024);
    success_id(
        &s.get(&[("session_id", sid), ("endpoint", &longest), ("key_p256dh", &p256dh), ("key_auth", &auth)]).await,
    );
}

async fn decisions_where_the_page_is_silent(b: Backend) {
    let s = setup(b).await;
    let ua = UaKeyPair::generate();
    let (p256dh, auth) = (ua.p256dh_b64(), ua.auth_b64());
    let sid = s.session.as_str();
    let endpoint = s.mock.endpoint("d");
    // Keys that pass the length checks but are not a browser's: 8507-8509.
    let mut point = ua.public;
    point[64] ^= 1;
    let off_curve = URL_SAFE_NO_PAD.encode(point);
    let non_https = "http://push.example.com/send/1";
    let (p, a, e) = (p256dh.as_str(), auth.as_str(), endpoint.as_str());
    let cases: [(Params, u16, &str); 4] = [
        (vec![("endpoint", non_https), ("key_p256dh", p), ("key_auth", a)], 8507, "endpoint is invalid"),
        (vec![("endpoint", e), ("key_p256dh", "BOxxx"), ("key_auth", a)], 8508, "key_p256dh is invalid"),
        (vec![("endpoint", e), ("key_p256dh", &off_curve), ("key_auth", a)], 8508, "key_p256dh is invalid"),
        (vec![("endpoint", e), ("key_p256dh", p), ("key_auth", "xxx")], 8509, "key_auth is invalid"),
    ];
    for (params, error_no, message) in cases {
        let mut all = vec![("session_id", sid)];
        all.extend(params);
        assert_failed(&s.get(&all).await, error_no, message);
    }
    // A malformed JSON body is a 400.
    let got = s.app.call_raw(Method::POST, &s.path(), None, "{broken").await;
    assert_eq!(got.0, 400);
    assert_eq!(got.1, json!({"data": {"operation_status": "FAILED", "error_message": "Bad Request"}}));
    assert_eq!(s.subscriptions().await, 0);

    // An account without a Web Push channel: 8510.
    let (bare, bare_sk, _) = s.app.account(false).await;
    let bare_session = session(&s.app, &bare_sk, "carol").await;
    let path = format!(
        "/compat/doboard/{bare}/push_subscribe?{}",
        query(&[("session_id", &bare_session), ("endpoint", &endpoint), ("key_p256dh", &p256dh), ("key_auth", &auth)])
    );
    let got = s.app.call(Method::GET, &path, None, None).await;
    assert_eq!(got.1["data"]["error_no"], 8510, "{}", got.1);
    assert_eq!(got.1["data"]["operation_status"], "FAILED");

    // A paused account: 403.
    let admin_path = format!("/admin/v1/accounts/{}", s.account);
    s.app.call(Method::PATCH, &admin_path, Some(ADMIN_TOKEN), Some(json!({"status": "paused"}))).await;
    let got =
        s.get(&[("session_id", sid), ("endpoint", &endpoint), ("key_p256dh", &p256dh), ("key_auth", &auth)]).await;
    assert_eq!(got.0, 403);
    assert_eq!(got.1, json!({"data": {"operation_status": "FAILED", "error_message": "Forbidden"}}));
}

async fn a_device_moves_to_the_user_who_subscribed_last(b: Backend) {
    let s = setup(b).await;
    let ua = UaKeyPair::generate();
    let endpoint = s.mock.endpoint("shared");
    let alice = success_id(&s.get(&pairs(&s.browser(&ua, &endpoint))).await);
    let bob_session = session(&s.app, &s.sk, "bob").await;
    let bob = success_id(
        &s.get(&[
            ("session_id", &bob_session),
            ("endpoint", &endpoint),
            ("key_p256dh", &ua.p256dh_b64()),
            ("key_auth", &ua.auth_b64()),
        ])
        .await,
    );
    assert_ne!(alice, bob);
    let (_, sub) = s.app.get(&format!("/v1/subscriptions/{alice}"), &s.sk).await;
    assert_eq!((sub["status"].as_str(), sub["inactive_reason"].as_str()), (Some("inactive"), Some("moved")));
    let payload = deliver(&s, "bob", &ua, "For Bob").await;
    assert_eq!(payload["title"], "For Bob");
}

async fn the_sessions_budget_is_counted(b: Backend) {
    let s = setup(b).await;
    let admin_path = format!("/admin/v1/accounts/{}", s.account);
    s.app.call(Method::PATCH, &admin_path, Some(ADMIN_TOKEN), Some(json!({"rate_limit_per_minute": 2}))).await;
    for _ in 0..2 {
        assert_failed(&s.get(&[("session_id", &s.session)]).await, 8501, "endpoint is required");
    }
    let res = s.app.http.get(format!("{}{}?session_id={}", s.app.base, s.path(), s.session)).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"data": {"operation_status": "FAILED", "error_message": "Too Many Requests"}}));
}

both_backends!(
    get_example_subscribes_and_delivers,
    post_form_and_json_upsert_and_reactivate,
    sessions_are_checked_before_anything,
    validation_errors_in_the_documented_order,
    decisions_where_the_page_is_silent,
    a_device_moves_to_the_user_who_subscribed_last,
    the_sessions_budget_is_counted
);
