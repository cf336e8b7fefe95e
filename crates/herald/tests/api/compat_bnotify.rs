//! The bnotify page (seeds/004) replayed against `/compat/bnotify`: every example and every
//! documented error, field by field; the pairing round trip (QR → deep link → browser
//! subscription → native API → send → what the push service received, decrypted); the limits.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::MockPush;
use crate::pairing::{browser_subscription, decode_qr};

const BASE: &str = "/compat/bnotify";
const UNAUTHORIZED: &str = r#"{"statusCode":401,"message":"Channel api key is no valid.","error":"Unauthorized"}"#;
const BAD_CHANNEL: &str = r#"{"statusCode":400,"message":"Channel id not valid","error":"Bad Request"}"#;
const NO_CHANNEL: &str = r#"{"statusCode":404,"message":"Channel not found","error":"Not Found"}"#;
const NO_SUBSCRIPTION: &str = r#"{"statusCode":404,"message":"Subscription not found","error":"Not Found"}"#;
const THROTTLED: &str = r#"{"statusCode":429,"message":"ThrottlerException: Too Many Requests"}"#;

struct Setup {
    app: TestApp,
    sk: String,
    channel: String,
    key: String,
    mock: MockPush,
}

async fn channel_key(app: &TestApp, sk: &str, channel: &str) -> String {
    let (status, key) = app.post("/v1/keys", sk, json!({"kind": "channel", "channel_id": channel})).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ck_"));
    key
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let channel = app.web_push_channel(&sk).await;
    let key = channel_key(&app, &sk, &channel).await;
    Setup { app, sk, channel, key, mock: MockPush::start().await }
}

impl Setup {
    /// A bnotify request with `X-CHANNEL-API-KEY: key` (none when `key` is `None`).
    async fn bn(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("X-CHANNEL-API-KEY", k)).into_iter().collect();
        self.app.call_headers(method, &format!("{BASE}{path}"), &headers, body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.bn(Method::GET, path, Some(&self.key), None).await
    }

    async fn send(&self, iuid: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/channels/{}/notifications/{iuid}", self.channel);
        self.bn(Method::POST, &path, Some(&self.key), Some(body)).await
    }
}

/// Asserts a status and an exact body.
#[track_caller]
fn exactly(got: &(StatusCode, Value), status: u16, body: &str) {
    assert_eq!(got.0.as_u16(), status, "body: {}", got.1);
    assert_eq!(got.1, serde_json::from_str::<Value>(body).unwrap());
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Asserts the documented subscription fields, their types, and nothing else.
#[track_caller]
fn assert_subscription(v: &Value, channel: &str, iuid: &str) {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["channel", "createdAt", "id", "iuid", "mute", "subscriber", "updatedAt"], "{v}");
    assert_eq!(
        (v["channel"].as_str(), v["iuid"].as_str(), v["mute"].as_bool()),
        (Some(channel), Some(iuid), Some(false))
    );
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()) && v["subscriber"].as_str().is_some_and(|s| s.len() == 24));
    for field in ["createdAt", "updatedAt"] {
        let t = v[field].as_i64().unwrap();
        assert!((now_secs() - 120..=now_secs()).contains(&t), "{field} in Unix seconds: {t}");
    }
}

async fn example_flow_pairs_a_browser_and_delivers(b: Backend) {
    let s = setup(b).await;
    // Subscriptions code.
    let got = s.get(&format!("/channels/{}/subscriptions/user-42/code", s.channel)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let body = got.1.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["appUrl", "code", "deepLink", "qrcode"]);
    let code = body["code"].as_str().unwrap();
    let deep_link = format!("{}/qrcode/{code}", s.app.base);
    assert_eq!(body["deepLink"], deep_link);
    assert_eq!(body["appUrl"], format!("{}/mobile", s.app.base));
    let qrcode = body["qrcode"].as_str().unwrap();
    assert!(qrcode.starts_with("data:image/gif;base64,R0"), "{qrcode}");
    assert_eq!(decode_qr(qrcode), deep_link, "the QR code scans to the deep link");

    // The deep link is the hosted page; the app URL explains phones.
    let page = s.app.http.get(&deep_link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, channel) = s.app.get(&format!("/v1/channels/{}", s.channel), &s.sk).await;
    assert!(page.text().await.unwrap().contains(channel["vapid_public_key"].as_str().unwrap()));
    assert_eq!(s.app.http.get(format!("{}/mobile", s.app.base)).send().await.unwrap().status(), 200);

    // Not yet subscribed: the documented 404s.
    exactly(&s.get(&format!("/channels/{}/subscriptions/user-42", s.channel)).await, 404, NO_SUBSCRIPTION);
    let example = json!({"title": "Notification Title", "text": "This is notification text, I can write anything!"});
    exactly(&s.send("user-42", example.clone()).await, 404, NO_SUBSCRIPTION);
    assert_eq!(s.get(&format!("/channels/{}/subscriptions", s.channel)).await.1, json!([]));

    // The page redeems the code with the browser's subscription, as pair.js does.
    let (ua, settings) = browser_subscription(&s.mock, "user-42-browser");
    let (status, sub) =
        s.app.call(Method::POST, &format!("/v1/pair/{code}"), None, Some(json!({"settings": settings}))).await;
    assert_eq!(status, 201, "{sub}");
    let (_, native) = s.app.get("/v1/users/user-42/subscriptions", &s.sk).await;
    assert_eq!(native["data"].as_array().unwrap().len(), 1, "{native}");
    assert_eq!(
        (native["data"][0]["channel_id"].as_str(), native["data"][0]["status"].as_str()),
        (Some(s.channel.as_str()), Some("active"))
    );
    let sub_id = native["data"][0]["id"].as_i64().unwrap().to_string();

    // Subscriptions details and list.
    let got = s.get(&format!("/channels/{}/subscriptions/user-42", s.channel)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_subscription(&got.1, &s.channel, "user-42");
    assert_eq!(got.1["id"], sub_id.as_str());
    let got = s.get(&format!("/channels/{}/subscriptions", s.channel)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1.as_array().unwrap().len(), 1);
    assert_subscription(&got.1[0], &s.channel, "user-42");

    // The user also has a device on another channel: a bnotify send reaches this channel only.
    let other = s
        .app
        .post(
            "/v1/channels",
            &s.sk,
            json!({"name": "other", "type": "web_push", "config": {"subject": "mailto:a@b.example"}}),
        )
        .await
        .1;
    let (_, elsewhere) = browser_subscription(&s.mock, "user-42-elsewhere");
    let reg = json!({"channel_id": other["id"], "settings": elsewhere});
    assert_eq!(s.app.post("/v1/users/user-42/subscriptions", &s.sk, reg).await.0, 201);

    // Send notification: the documented example.
    let got = s.send("user-42", example.clone()).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let n = got.1.as_object().unwrap();
    let mut keys: Vec<&str> = n.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["createdAt", "id", "readedAt", "subscription", "text", "title"]);
    assert_eq!(
        (n["subscription"].as_str(), n["title"].clone(), n["text"].clone()),
        (Some(sub_id.as_str()), example["title"].clone(), example["text"].clone())
    );
    assert_eq!(n["readedAt"], 0);
    assert!((now_secs() - 60..=now_secs()).contains(&n["createdAt"].as_i64().unwrap()), "createdAt in Unix seconds");
    let done = s.app.wait_done(&s.sk, n["id"].as_str().unwrap()).await;
    assert_eq!((done["counts"]["delivered"].as_i64(), done["counts"]["total"].as_i64()), (Some(1), Some(1)), "{done}");
    let received = s.mock.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/push/user-42-browser");
    let payload: Value = serde_json::from_slice(&ua.decrypt(&received[0].body).expect("decrypts")).unwrap();
    assert_eq!(
        (payload["title"].clone(), payload["body"].clone()),
        (example["title"].clone(), example["text"].clone())
    );
    // It is in the user's inbox, unread, as readedAt said.
    let (_, inbox) = s.app.get("/v1/users/user-42/notifications", &s.sk).await;
    assert_eq!((inbox["data"][0]["id"].clone(), inbox["data"][0]["read_at"].clone()), (n["id"].clone(), Value::Null));
}

async fn documented_errors_replay_exactly(b: Backend) {
    let s = setup(b).await;
    let c = &s.channel;
    let paths = [
        (Method::GET, format!("/channels/{c}/subscriptions/u1/code")),
        (Method::GET, format!("/channels/{c}/subscriptions")),
        (Method::GET, format!("/channels/{c}/subscriptions/u1")),
        (Method::POST, format!("/channels/{c}/notifications/u1")),
    ];
    let body = json!({"title": "Notification Title", "text": "This is notification text"});
    // 401: no key, an unknown key, a key of another kind, a revoked key.
    let (_, revoked) = s.app.post("/v1/keys", &s.sk, json!({"kind": "channel", "channel_id": c})).await;
    let (status, _) =
        s.app.call(Method::DELETE, &format!("/v1/keys/{}", revoked["id"].as_str().unwrap()), Some(&s.sk), None).await;
    assert_eq!(status, 204);
    let unknown = format!("ck_{}", "A".repeat(43));
    for (method, path) in &paths {
        for key in [None, Some(""), Some(unknown.as_str()), Some(s.sk.as_str()), revoked["key"].as_str()] {
            let got = s.bn(method.clone(), path, key, Some(body.clone())).await;
            exactly(&got, 401, UNAUTHORIZED);
        }
    }
    // 400 Channel id not valid: not a UUID. 404 Channel not found: a UUID that is not the key's
    // channel, whether it is another channel of the account or nothing at all.
    let (_, other) = s
        .app
        .post(
            "/v1/channels",
            &s.sk,
            json!({"name": "b", "type": "web_push", "config": {"subject": "mailto:a@b.example"}}),
        )
        .await;
    for (method, path) in &paths {
        for bad in ["not-a-uuid", "1234", &c.replace('-', "")] {
            let got = s.bn(method.clone(), &path.replace(c.as_str(), bad), Some(&s.key), Some(body.clone())).await;
            exactly(&got, 400, BAD_CHANNEL);
        }
        for missing in [other["id"].as_str().unwrap(), "00000000-0000-4000-8000-000000000000"] {
            let got = s.bn(method.clone(), &path.replace(c.as_str(), missing), Some(&s.key), Some(body.clone())).await;
            exactly(&got, 404, NO_CHANNEL);
        }
        // The key's channel in upper case is the same channel.
        let got =
            s.bn(method.clone(), &path.replace(c.as_str(), &c.to_uppercase()), Some(&s.key), Some(body.clone())).await;
        assert!(got.0.is_success() || got.1["message"] == "Subscription not found", "{}", got.1);
    }
    // 404 Subscription not found.
    exactly(&s.get(&format!("/channels/{c}/subscriptions/nobody")).await, 404, NO_SUBSCRIPTION);
    exactly(&s.send("nobody", body.clone()).await, 404, NO_SUBSCRIPTION);

    // 400 NestJS validation of the send body, every class-validator message in order.
    let cases = [
        (json!({"title": "Hi", "text": "Hello there"}), json!(["title must be longer than or equal to 3 characters"])),
        (
            json!({"title": "x".repeat(31), "text": "Hello there"}),
            json!(["title must be shorter than or equal to 30 characters"]),
        ),
        (json!({"title": "Hey", "text": "Yo"}), json!(["text must be longer than or equal to 3 characters"])),
        (
            json!({"title": "Hey", "text": "y".repeat(201)}),
            json!(["text must be shorter than or equal to 200 characters"]),
        ),
        (
            json!({"title": 123}),
            json!([
                "title must be shorter than or equal to 30 characters",
                "title must be longer than or equal to 3 characters",
                "title must be a string",
                "text must be shorter than or equal to 200 characters",
                "text must be longer than or equal to 3 characters",
                "text must be a string"
            ]),
        ),
    ];
    for (body, messages) in cases {
        let got = s.send("nobody", body).await;
        assert_eq!(got.0, 400, "{}", got.1);
        assert_eq!(got.1, json!({"statusCode": 400, "message": messages, "error": "Bad Request"}));
    }
    // The limits are inclusive.
    let edge = json!({"title": "x".repeat(30), "text": "y".repeat(200)});
    exactly(&s.send("nobody", edge).await, 404, NO_SUBSCRIPTION);
    let headers = [("X-CHANNEL-API-KEY", s.key.as_str()), ("content-type", "application/json")];
    let url = format!("{}{BASE}/channels/{c}/notifications/nobody", s.app.base);
    let mut req = s.app.http.post(url).body("{\"title\": ");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 400);
    let got: Value = res.json().await.unwrap();
    assert_eq!((got["statusCode"].as_i64(), got["error"].as_str()), (Some(400), Some("Bad Request")));
    assert!(got["message"].as_str().unwrap().starts_with("Unexpected token in JSON"), "{got}");

    // An iuid the service refuses, in class-validator words.
    let got = s.get(&format!("/channels/{c}/subscriptions/{}/code", "u".repeat(256))).await;
    assert_eq!(
        got.1,
        json!({"statusCode": 400, "message": ["iuid must be shorter than or equal to 255 characters"], "error": "Bad Request"})
    );
    // NestJS's 404 for routes it does not have.
    exactly(
        &s.get("/channels").await,
        404,
        r#"{"statusCode":404,"message":"Cannot GET /channels","error":"Not Found"}"#,
    );
    let got = s.bn(Method::DELETE, &format!("/channels/{c}/subscriptions"), Some(&s.key), None).await;
    assert_eq!(got.1["message"], format!("Cannot DELETE /channels/{c}/subscriptions"));
}

/// Spends a budget with `request` until the first 429 and checks it came no earlier than
/// `limit` and no later than the tokens that can have come back meanwhile allow.
async fn spend<F, Fut>(limit: u32, mut request: F) -> reqwest::Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let started = Instant::now();
    for i in 0..limit {
        let res = request().await;
        assert_ne!(res.status(), 429, "request {i} of {limit} was throttled");
    }
    let mut extra = 0;
    loop {
        let res = request().await;
        if res.status() == 429 {
            return res;
        }
        extra += 1;
        // GCRA gives one request back every 60/limit seconds.
        let refilled = (started.elapsed().as_secs_f64() * f64::from(limit) / 60.0).ceil() as u32 + 1;
        assert!(extra <= refilled, "{extra} requests past the limit of {limit} were allowed");
    }
}

async fn throttled_after_200_reads_and_600_sends_per_key(b: Backend) {
    let s = setup(b).await;
    let c = s.channel.clone();
    let request = |method: Method, path: String, key: String| {
        let req = s.app.http.request(method, format!("{}{BASE}{path}", s.app.base)).header("X-CHANNEL-API-KEY", key);
        async move { req.json(&json!({"title": "Hello", "text": "World"})).send().await.unwrap() }
    };
    // Sends: 600 per minute (to a user with no subscription: each answer is a cheap 404).
    let res = spend(600, || request(Method::POST, format!("/channels/{c}/notifications/nobody"), s.key.clone())).await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(res.json::<Value>().await.unwrap(), serde_json::from_str::<Value>(THROTTLED).unwrap());
    // Reads have their own budget of 200, shared by the three read endpoints.
    let mut n = 0;
    let res = spend(200, || {
        n += 1;
        let path = match n % 3 {
            0 => format!("/channels/{c}/subscriptions"),
            1 => format!("/channels/{c}/subscriptions/nobody"),
            _ => format!("/channels/{c}/subscriptions/u{n}/code"),
        };
        request(Method::GET, path, s.key.clone())
    })
    .await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.json::<Value>().await.unwrap(), serde_json::from_str::<Value>(THROTTLED).unwrap());
    // Another key of the same channel has its own budgets.
    let fresh = channel_key(&s.app, &s.sk, &c).await;
    assert_eq!(request(Method::GET, format!("/channels/{c}/subscriptions"), fresh.clone()).await.status(), 200);
    assert_eq!(request(Method::POST, format!("/channels/{c}/notifications/nobody"), fresh).await.status(), 404);
    // A bad key is refused before it can spend anything.
    let got = s.bn(Method::GET, &format!("/channels/{c}/subscriptions"), Some("ck_nope"), None).await;
    exactly(&got, 401, UNAUTHORIZED);
}

both_backends!(
    example_flow_pairs_a_browser_and_delivers,
    documented_errors_replay_exactly,
    throttled_after_200_reads_and_600_sends_per_key,
);
