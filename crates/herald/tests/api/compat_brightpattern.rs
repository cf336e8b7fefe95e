//! Bright Pattern's *Request Chat* and *Mobile Notification Subscription* (seeds/002) replayed
//! against `/compat/brightpattern`: each token parameter, `{}` to cancel, a changed token
//! replacing the old one, `WebChat` cookies, every documented error (403, 406) with its body,
//! then the subscription in the native API and real deliveries to the chat's topic through the
//! APNs (with the app's bundle id as topic) and FCM mocks.

use herald_providers::mock::{MockApns, MockApnsConfig, MockFcm, MockFcmConfig, MockRequest, fixtures};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// The bundle id the app sends; the channel's own is [`fixtures::TEST_BUNDLE_ID`].
const APP_BUNDLE: &str = "com.example.chatapp";
const TENANT: &str = "tenantUrl=example.brightpattern.com";

struct Setup {
    app: TestApp,
    account: i64,
    sk: String,
    pk: String,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (account, sk, pk) = app.account(false).await;
    Setup { app, account, sk, pk }
}

impl Setup {
    /// An APNs channel on a mock that accepts only [`APP_BUNDLE`] as topic.
    async fn apns(&self) -> MockApns {
        let config = MockApnsConfig::new(fixtures::EC_PUBLIC_PEM, fixtures::TEST_TEAM_ID, fixtures::TEST_KEY_ID)
            .bundle_id(APP_BUNDLE);
        let mock = MockApns::start(config).await.unwrap();
        let body = json!({"name": "ios", "type": "apns", "config": fixtures::apns_channel_config(mock.base_url())});
        assert_eq!(self.app.post("/v1/channels", &self.sk, body).await.0, 201);
        mock
    }

    async fn fcm(&self) -> MockFcm {
        let mock = MockFcm::start(MockFcmConfig::with_test_key()).await.unwrap();
        let body = json!({"name": "android", "type": "fcm", "config": fixtures::fcm_channel_config(&mock)});
        assert_eq!(self.app.post("/v1/channels", &self.sk, body).await.0, 201);
        mock
    }

    fn auth(&self, client: &str) -> String {
        format!(r#"MOBILE-API-140-327-PLAIN appId="{}", clientId="{client}""#, self.pk)
    }

    async fn request(&self, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> reqwest::Response {
        let mut req = self.app.http.post(format!("{}/compat/brightpattern{path}", self.app.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        req.send().await.unwrap()
    }

    async fn request_chat(&self, client: &str) -> String {
        let res = self
            .request(
                &format!("/clientweb/api/v1/chats?{TENANT}"),
                &[("authorization", &self.auth(client))],
                Some(r#"{"phone_number": "", "from": "", "parameters": {"email": "a@example.com"}}"#),
            )
            .await;
        let (status, body) = (res.status(), res.json::<Value>().await.unwrap());
        assert_eq!(status, 200, "{body}");
        let chat = body["chat_id"].as_str().expect("chat_id").to_string();
        assert_eq!(body, json!({"chat_id": chat, "state": "queued"}));
        chat
    }

    async fn subscribe_as(&self, headers: &[(&str, &str)], chat: &str, body: &str) -> (StatusCode, Value) {
        let res =
            self.request(&format!("/clientweb/api/v2/chats/{chat}/notifications?{TENANT}"), headers, Some(body)).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn subscribe(&self, client: &str, chat: &str, body: Value) -> (StatusCode, Value) {
        self.subscribe_as(&[("authorization", &self.auth(client))], chat, &body.to_string()).await
    }

    async fn subscriptions_of(&self, user: &str) -> Vec<Value> {
        let (status, list) = self.app.get(&format!("/v1/users/{user}/subscriptions"), &self.sk).await;
        assert_eq!(status, 200, "{list}");
        list["data"].as_array().unwrap().clone()
    }

    /// Sends to the chat's topic and waits until every delivery settled; returns the notification.
    async fn send_to_chat(&self, chat: &str, title: &str) -> Value {
        let sent = self.app.send(&self.sk, json!({"to": {"topic": format!("chat:{chat}")}, "title": title})).await;
        self.app.wait_done(&self.sk, sent["id"].as_str().unwrap()).await
    }
}

fn services(apns: &str, fcm: &str) -> Value {
    json!({"services": [{"name": "apns", "status": apns}, {"name": "fcm", "status": fcm}]})
}

fn fcm_messages(mock: &MockFcm) -> Vec<Value> {
    mock.requests().iter().filter(|r| r.path.ends_with("messages:send")).filter_map(MockRequest::json).collect()
}

#[track_caller]
fn assert_bp_error(got: &(StatusCode, Value), status: u16) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error_code"], status, "{}", got.1);
    let message = got.1["error_message"].as_str().expect("error_message");
    let obj = got.1.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{}", got.1);
    match status {
        403 => assert_eq!(message, "Forbidden"),
        406 => assert!(message.starts_with("Not acceptable"), "{message}"),
        _ => {}
    }
}

async fn apns_token_subscribes_the_chat_with_the_apps_bundle_id(b: Backend) {
    let s = setup(b).await;
    let apns = s.apns().await;
    let chat = s.request_chat("device-1").await;
    let token = fixtures::TEST_DEVICE_TOKEN;
    let got =
        s.subscribe("device-1", &chat, json!({"ios_apns_device_token": token, "ios_app_bundle_id": APP_BUNDLE})).await;
    assert_eq!(got, (StatusCode::OK, services("subscribed", "not_configured")));

    let subs = s.subscriptions_of("device-1").await;
    assert_eq!(subs.len(), 1);
    let sub = &subs[0];
    assert_eq!((sub["channel_type"].as_str(), sub["identifier"].as_str()), (Some("apns"), Some(token)));
    assert_eq!(sub["settings"], json!({"token": token, "bundle_id": APP_BUNDLE}));
    assert_eq!(sub["topics"], json!([format!("chat:{chat}")]));
    let (_, by_topic) = s.app.get(&format!("/v1/topics/chat:{chat}/subscriptions"), &s.sk).await;
    assert_eq!(by_topic["data"][0]["id"], sub["id"]);

    let n = s.send_to_chat(&chat, "New message").await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    assert!(apns.rejected().is_empty(), "{:?}", apns.rejected());
    let request = &apns.requests()[0];
    assert_eq!(request.path, format!("/3/device/{token}"));
    assert_eq!(request.header("apns-topic"), Some(APP_BUNDLE), "the app's bundle id is the topic");
    assert_eq!(request.header("apns-push-type"), Some("alert"));
    assert_eq!(request.json().unwrap()["aps"]["alert"]["title"], "New message");
}

async fn firebase_tokens_replace_and_cancel(b: Backend) {
    let s = setup(b).await;
    let _apns = s.apns().await;
    let fcm = s.fcm().await;
    let chat = s.request_chat("android-7").await;
    for (param, token) in
        [("android_firebase_device_token", "fcm-token:old"), ("ios_firebase_device_token", "fcm-token:new")]
    {
        let got = s.subscribe("android-7", &chat, json!({ param: token })).await;
        assert_eq!(got, (StatusCode::OK, services("unsubscribed", "subscribed")));
    }
    // The changed token replaced the old one.
    let subs = s.subscriptions_of("android-7").await;
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(
        (subs[0]["identifier"].as_str(), subs[0]["channel_type"].as_str()),
        (Some("fcm-token:new"), Some("fcm"))
    );

    let n = s.send_to_chat(&chat, "Agent replied").await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    let messages = fcm_messages(&fcm);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["message"]["token"], "fcm-token:new");
    assert_eq!(messages[0]["message"]["notification"]["title"], "Agent replied");

    // The same device in a second chat: one subscription, both topics; cancelling one keeps the other.
    let second = s.request_chat("android-7").await;
    let got = s.subscribe("android-7", &second, json!({"android_firebase_device_token": "fcm-token:new"})).await;
    assert_eq!(got.0, 200);
    let subs = s.subscriptions_of("android-7").await;
    assert_eq!(subs.len(), 1);
    let mut topics: Vec<String> = serde_json::from_value(subs[0]["topics"].clone()).unwrap();
    topics.sort();
    let mut expected = vec![format!("chat:{chat}"), format!("chat:{second}")];
    expected.sort();
    assert_eq!(topics, expected);

    let got = s.subscribe_as(&[("authorization", &s.auth("android-7"))], &chat, "{}").await;
    assert_eq!(got, (StatusCode::OK, services("unsubscribed", "unsubscribed")));
    let subs = s.subscriptions_of("android-7").await;
    assert_eq!(subs[0]["topics"], json!([format!("chat:{second}")]));
    let n = s.send_to_chat(&chat, "Nobody hears this").await;
    assert_eq!(n["counts"]["delivered"], 0, "{n}");
    // Cancelling the last chat removes the subscription, which existed only for the chats.
    let got = s.subscribe("android-7", &second, json!({})).await;
    assert_eq!(got.0, 200);
    assert!(s.subscriptions_of("android-7").await.is_empty());
    assert_eq!(fcm_messages(&fcm).len(), 1, "nothing more was pushed");
}

async fn forbidden_for_bad_credentials_and_unknown_chats(b: Backend) {
    let s = setup(b).await;
    s.apns().await;
    let chat = s.request_chat("device-1").await;
    let body =
        json!({"ios_apns_device_token": fixtures::TEST_DEVICE_TOKEN, "ios_app_bundle_id": APP_BUNDLE}).to_string();
    let before = s.app.snapshot().await;
    let bad_auth = [
        String::new(),
        format!("Bearer {}", s.pk),
        r#"MOBILE-API-140-327-PLAIN appId="pk_unknown", clientId="device-1""#.to_string(),
        format!(r#"MOBILE-API-140-327-PLAIN appId="{}", clientId="device-1""#, s.sk),
        format!(r#"MOBILE-API-140-327-PLAIN appId="{}""#, s.pk),
        format!(r#"MOBILE-API-140-327-PLAIN appId="{}", clientId="""#, s.pk),
    ];
    for auth in &bad_auth {
        let headers: Vec<(&str, &str)> = if auth.is_empty() { vec![] } else { vec![("authorization", auth)] };
        assert_bp_error(&s.subscribe_as(&headers, &chat, &body).await, 403);
        let res = s.request(&format!("/clientweb/api/v1/chats?{TENANT}"), &headers, Some("{}")).await;
        assert_bp_error(&(res.status(), res.json().await.unwrap()), 403);
    }
    // An unknown chat, and another client's chat.
    assert_bp_error(&s.subscribe_as(&[("authorization", &s.auth("device-1"))], "no-such-chat", &body).await, 403);
    assert_bp_error(&s.subscribe_as(&[("authorization", &s.auth("device-2"))], &chat, &body).await, 403);
    assert_eq!(before, s.app.snapshot().await, "refused requests store nothing");

    // A paused account.
    let path = format!("/admin/v1/accounts/{}", s.account);
    s.app.call(Method::PATCH, &path, Some(ADMIN_TOKEN), Some(json!({"status": "paused"}))).await;
    assert_bp_error(&s.subscribe_as(&[("authorization", &s.auth("device-1"))], &chat, &body).await, 403);
}

async fn not_acceptable_parameters(b: Backend) {
    let s = setup(b).await;
    s.apns().await; // no FCM channel
    let chat = s.request_chat("device-1").await;
    let token = fixtures::TEST_DEVICE_TOKEN;
    let before = s.app.snapshot().await;
    let cases = [
        json!({"ios_apns_device_token": token, "ios_app_bundle_id": APP_BUNDLE, "android_firebase_device_token": "f"}),
        json!({"ios_firebase_device_token": "f", "android_firebase_device_token": "g"}),
        json!({"ios_apns_device_token": token}),
        json!({"ios_app_bundle_id": APP_BUNDLE}),
        json!({"android_firebase_device_token": "f", "ios_app_bundle_id": APP_BUNDLE}),
        json!({"something_else": "x"}),
        json!({"ios_apns_device_token": 42, "ios_app_bundle_id": APP_BUNDLE}),
        // Corresponding notifications are not configured: the account has no FCM channel.
        json!({"android_firebase_device_token": "fcm-token:1"}),
        // Not a device token, not a bundle id.
        json!({"ios_apns_device_token": "not-hex", "ios_app_bundle_id": APP_BUNDLE}),
        json!({"ios_apns_device_token": token, "ios_app_bundle_id": "bad bundle"}),
    ];
    for body in cases {
        let got = s.subscribe("device-1", &chat, body.clone()).await;
        assert_bp_error(&got, 406);
    }
    let got = s.subscribe_as(&[("authorization", &s.auth("device-1"))], &chat, "[1, 2]").await;
    assert_bp_error(&got, 406);
    assert_eq!(before, s.app.snapshot().await, "refused requests store nothing");
}

async fn web_chat_clients_are_identified_by_cookie(b: Backend) {
    let s = setup(b).await;
    let apns = s.apns().await;
    let web_chat = s.auth("WebChat");
    let res = s.request(&format!("/clientweb/api/v1/chats?{TENANT}"), &[("authorization", &web_chat)], None).await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/compat/brightpattern"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let client = pair.strip_prefix("bp_client_id=").expect("the client cookie").to_string();
    let chat = res.json::<Value>().await.unwrap()["chat_id"].as_str().unwrap().to_string();

    // With the cookie, a second chat keeps the same client and sets no new cookie.
    let res = s
        .request(&format!("/clientweb/api/v1/chats?{TENANT}"), &[("authorization", &web_chat), ("cookie", &pair)], None)
        .await;
    assert!(res.headers().get("set-cookie").is_none());
    assert_eq!(res.status(), 200);

    let body =
        json!({"ios_apns_device_token": fixtures::TEST_DEVICE_TOKEN, "ios_app_bundle_id": APP_BUNDLE}).to_string();
    assert_bp_error(&s.subscribe_as(&[("authorization", &web_chat)], &chat, &body).await, 403);
    let other = [("authorization", web_chat.as_str()), ("cookie", "bp_client_id=webchat-someone-else")];
    assert_bp_error(&s.subscribe_as(&other, &chat, &body).await, 403);
    let with_cookie = [("authorization", web_chat.as_str()), ("cookie", pair.as_str())];
    let got = s.subscribe_as(&with_cookie, &chat, &body).await;
    assert_eq!(got, (StatusCode::OK, services("subscribed", "not_configured")));
    assert_eq!(s.subscriptions_of(&client).await.len(), 1);
    let n = s.send_to_chat(&chat, "Hello web chat").await;
    assert_eq!(n["counts"]["delivered"], 1, "{n}");
    assert_eq!(apns.requests().len(), 1);
}

async fn the_apps_budget_is_counted(b: Backend) {
    let s = setup(b).await;
    let admin_path = format!("/admin/v1/accounts/{}", s.account);
    s.app.call(Method::PATCH, &admin_path, Some(ADMIN_TOKEN), Some(json!({"rate_limit_per_minute": 2}))).await;
    s.request_chat("device-1").await;
    // The budget is the key's: another client id does not get a fresh one.
    s.request_chat("device-2").await;
    let res =
        s.request(&format!("/clientweb/api/v1/chats?{TENANT}"), &[("authorization", &s.auth("device-3"))], None).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let got = (res.status(), res.json::<Value>().await.unwrap());
    assert_bp_error(&got, 429);
}

both_backends!(
    apns_token_subscribes_the_chat_with_the_apps_bundle_id,
    firebase_tokens_replace_and_cancel,
    forbidden_for_bad_credentials_and_unknown_chats,
    not_acceptable_parameters,
    web_chat_clients_are_identified_by_cookie,
    the_apps_budget_is_counted
);
