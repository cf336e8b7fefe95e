//! The browser side's server half, on both backends: CORS on the client surfaces under the
//! account's allowed origins, the SDK files, receipts (from the token a real encrypted push
//! carries), renewals, the VAPID key lookup and declarative Web Push. The same flows run in a
//! real Firefox in `browser-tests/`.

use std::time::{Duration, Instant};

use herald_providers::webpush::testing::UaKeyPair;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::{MockPush, Received};

const APP: &str = "https://app.example";

async fn wait_for(mock: &MockPush, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = mock.received();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "expected {n} requests, got {}", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Browser {
    ua: UaKeyPair,
    id: i64,
    renewal_token: String,
}

/// Registers a browser for `user` through the client API (dev mode), as the SDK does.
async fn subscribe(app: &TestApp, pk: &str, user: &str, endpoint: &str, topics: Value) -> Browser {
    let ua = UaKeyPair::generate();
    let body = json!({"settings": {"endpoint": endpoint, "keys": {"p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()}}, "topics": topics});
    let (status, sub) = app
        .call_headers(
            Method::POST,
            "/v1/me/subscriptions",
            &[("authorization", &format!("Bearer {pk}")), ("x-herald-user-id", user)],
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert!(sub["settings"].get("auth").is_none());
    Browser { ua, id: sub["id"].as_i64().unwrap(), renewal_token: sub["renewal_token"].as_str().unwrap().to_string() }
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

fn acao(res: &reqwest::Response) -> Option<String> {
    res.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
}

async fn cors_follows_the_account_and_spares_backend_routes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (account, sk, pk) = app.account(true).await;
    app.web_push_channel(&sk).await;
    // A preflight names no account: any origin, the methods, the requested headers.
    let pre = [
        ("origin", APP),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization, content-type, x-herald-user-id"),
    ];
    for path in [
        "/v1/me/subscriptions",
        "/v1/receipts",
        "/v1/renewals",
        "/v1/pair/x",
        "/compat/notiflows/user/v1/channels/x/subscriptions",
        "/compat/doboard/1/push_subscribe",
    ] {
        let res = raw(&app, Method::OPTIONS, path, &pre, None).await;
        assert_eq!(res.status(), 204, "{path}");
        assert_eq!(acao(&res).as_deref(), Some(APP), "{path}");
        assert!(res.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert!(res.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-herald-user-id"));
        assert_eq!(res.headers()["access-control-max-age"], "600");
    }
    let res = raw(&app, Method::OPTIONS, "/compat/brightpattern/clientweb/api/v1/chats", &pre, None).await;
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    // Backend and operator routes never answer CORS.
    for path in ["/v1/notifications", "/admin/v1/accounts", "/v1/channels"] {
        let res = raw(&app, Method::OPTIONS, path, &pre, None).await;
        assert!(acao(&res).is_none(), "{path}");
        let res =
            raw(&app, Method::GET, path, &[("origin", APP), ("authorization", &format!("Bearer {sk}"))], None).await;
        assert!(acao(&res).is_none(), "{path}");
    }
    // The SDK is public.
    let res = raw(&app, Method::GET, "/sdk/herald.js", &[("origin", APP)], None).await;
    assert_eq!((res.status().as_u16(), acao(&res).as_deref()), (200, Some("*")));
    let js = res.text().await.unwrap();
    assert!(js.starts_with("(function(){") && js.contains("window.Herald = Herald"));
    let mjs = raw(&app, Method::GET, "/sdk/herald.mjs", &[], None).await.text().await.unwrap();
    assert!(mjs.contains("export default Herald"));
    let sw = raw(&app, Method::GET, "/sdk/herald-sw.js", &[], None).await;
    assert!(sw.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));

    // Any origin by default; the account's list once set.
    let me = |origin: &'static str| {
        let app = &app;
        let pk = pk.clone();
        async move {
            raw(
                app,
                Method::GET,
                "/v1/me/subscriptions",
                &[("origin", origin), ("authorization", &format!("Bearer {pk}")), ("x-herald-user-id", "alice")],
                None,
            )
            .await
        }
    };
    let res = me("https://elsewhere.example").await;
    assert_eq!((res.status().as_u16(), acao(&res).as_deref()), (200, Some("https://elsewhere.example")));
    let (status, acct) =
        app.call(Method::PATCH, "/v1/account", Some(&sk), Some(json!({"allowed_origins": [APP]}))).await;
    assert_eq!(status, 200, "{acct}");
    assert_eq!(acct["allowed_origins"], json!([APP]));
    let res = me(APP).await;
    assert_eq!((res.status().as_u16(), acao(&res).as_deref()), (200, Some(APP)));
    let res = me("https://elsewhere.example").await;
    assert_eq!(res.status(), 403);
    assert!(acao(&res).is_none(), "a refused origin cannot read the answer");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["details"]["reason"], "origin_not_allowed", "{body}");
    // Bad origins are refused when set.
    let got = app
        .call(
            Method::PATCH,
            &format!("/admin/v1/accounts/{account}"),
            Some(ADMIN_TOKEN),
            Some(json!({"allowed_origins": ["https://app.example/path"]})),
        )
        .await;
    assert_field(&got, "allowed_origins[0]", "invalid");

    // Bright Pattern's cookie-identified WebChat: only listed origins, with credentials.
    let bp = format!("MOBILE-API-140-327-PLAIN appId=\"{pk}\", clientId=\"WebChat\"");
    let res = raw(
        &app,
        Method::POST,
        "/compat/brightpattern/clientweb/api/v1/chats",
        &[("origin", APP), ("authorization", &bp)],
        Some(json!({})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    app.call(Method::PATCH, "/v1/account", Some(&sk), Some(json!({"allowed_origins": null}))).await;
    let res = raw(
        &app,
        Method::POST,
        "/compat/brightpattern/clientweb/api/v1/chats",
        &[("origin", APP), ("authorization", &bp)],
        Some(json!({})),
    )
    .await;
    assert_eq!(res.status(), 403, "cookies need an origin the account lists by name");
    assert!(acao(&res).is_none());
}

/// The receipt token of the `n`th push the mock received, decrypted as the browser would.
fn receipt_of(browser: &Browser, r: &Received) -> (Value, String) {
    let payload: Value = serde_json::from_slice(&browser.ua.decrypt(&r.body).unwrap()).unwrap();
    let token = payload["herald"]["receipt"].as_str().or(payload["notification"]["data"]["herald"]["receipt"].as_str());
    let token = token.unwrap_or_else(|| panic!("no receipt in {payload}")).to_string();
    (payload, token)
}

async fn receipts_are_recorded_once_and_announced(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(true).await;
    app.web_push_channel(&sk).await;
    let push = MockPush::start().await;
    let hooks = MockPush::start().await;
    let (s, _) = app
        .post(
            "/v1/webhooks",
            &sk,
            json!({"url": hooks.endpoint("h"), "events": ["notification.displayed", "notification.clicked"]}),
        )
        .await;
    assert_eq!(s, 201);
    let alice = subscribe(&app, &pk, "alice", &push.endpoint("a"), json!(null)).await;
    let bob = subscribe(&app, &pk, "bob", &push.endpoint("b"), json!(null)).await;
    let sent = app
        .send(
            &sk,
            json!({"to": {"users": ["alice", "bob"]}, "title": "Hi", "actions": [{"action": "open", "title": "Open"}]}),
        )
        .await;
    let id = sent["id"].as_str().unwrap();
    app.wait_done(&sk, id).await;
    let received = wait_for(&push, 2).await;
    let of = |name: &str| received.iter().find(|r| r.path.ends_with(name)).unwrap().clone();
    let (payload, token) = receipt_of(&alice, &of("/a"));
    assert_eq!(payload["title"], "Hi");
    assert_eq!(payload["herald"]["notification_id"], id);
    let (_, bob_token) = receipt_of(&bob, &of("/b"));
    assert_ne!(token, bob_token, "each delivery its own token");

    let post = |body: Value| {
        let app = &app;
        async move { app.call(Method::POST, "/v1/receipts", None, Some(body)).await }
    };
    assert_eq!(post(json!({"token": token, "event": "displayed"})).await.0, 204);
    assert_eq!(post(json!({"token": token, "event": "displayed"})).await.0, 204, "idempotent");
    assert_eq!(post(json!({"token": token, "event": "clicked", "action": "open"})).await.0, 204);
    assert_eq!(post(json!({"token": token, "event": "clicked", "action": "later"})).await.0, 204);
    let before = app.snapshot().await;
    // Forged, malformed, another token's MAC on this id, unknown events: refused, nothing stored.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_error(&post(json!({"token": forged, "event": "displayed"})).await, 401, "unauthenticated");
    assert_error(&post(json!({"token": "hr1.nope", "event": "displayed"})).await, 401, "unauthenticated");
    let parts: Vec<&str> = token.split('.').collect();
    let bob_parts: Vec<&str> = bob_token.split('.').collect();
    let swapped = format!("{}.{}.{}", parts[0], bob_parts[1], parts[2]);
    assert_error(&post(json!({"token": swapped, "event": "displayed"})).await, 401, "unauthenticated");
    assert_field(&post(json!({"token": bob_token, "event": "opened"})).await, "event", "invalid");
    assert_error(
        &post(json!({"token": bob_token, "event": "clicked", "action": "a\u{1}"})).await,
        422,
        "validation_failed",
    );
    assert_eq!(app.snapshot().await, before);

    let (_, n) = app.get(&format!("/v1/notifications/{id}"), &sk).await;
    assert_eq!((n["counts"]["displayed"].as_i64(), n["counts"]["clicked"].as_i64()), (Some(1), Some(1)), "{n}");
    let d = n["deliveries"].as_array().unwrap().iter().find(|d| d["subscription_id"] == alice.id).unwrap();
    assert!(d["displayed_at"].is_string() && d["clicked_at"].is_string(), "{d}");
    assert_eq!(d["clicked_action"], "open", "the first click wins");
    let hooks = wait_for(&hooks, 2).await;
    let mut types: Vec<String> = hooks
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    assert_eq!(types, ["notification.clicked", "notification.displayed"], "one event each, repeats are silent");
}

async fn renewals_replace_one_subscription(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(true).await;
    app.web_push_channel(&sk).await;
    let old = subscribe(&app, &pk, "alice", "https://fcm.googleapis.com/fcm/send/old", json!(["news"])).await;
    let ua = UaKeyPair::generate();
    let settings = json!({"endpoint": "https://fcm.googleapis.com/fcm/send/new", "keys": {"p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()}});
    let (status, new) = app
        .call(Method::POST, "/v1/renewals", None, Some(json!({"token": old.renewal_token, "settings": settings})))
        .await;
    assert_eq!(status, 201, "{new}");
    assert_eq!((new["user"].as_str(), new["topics"].clone()), (Some("alice"), json!(["news"])));
    assert!(new["renewal_token"].is_string());
    let (_, was) = app.get(&format!("/v1/subscriptions/{}", old.id), &sk).await;
    assert_eq!(
        (was["status"].as_str(), was["inactive_reason"].as_str()),
        (Some("inactive"), Some("replaced")),
        "{was}"
    );
    // Used once: the token renews nothing more; forged and receipt tokens are not renewal tokens.
    let again = app
        .call(Method::POST, "/v1/renewals", None, Some(json!({"token": old.renewal_token, "settings": settings})))
        .await;
    assert_error(&again, 410, "gone");
    let forged = app
        .call(
            Method::POST,
            "/v1/renewals",
            None,
            Some(json!({"token": "hn1.AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", "settings": settings})),
        )
        .await;
    assert_error(&forged, 401, "unauthenticated");
    // Invalid settings store nothing.
    let before = app.snapshot().await;
    let token = new["renewal_token"].as_str().unwrap();
    let bad = app
        .call(Method::POST, "/v1/renewals", None, Some(json!({"token": token, "settings": {"endpoint": "nope"}})))
        .await;
    assert_error(&bad, 422, "validation_failed");
    assert_eq!(app.snapshot().await, before);
}

async fn vapid_key_and_declarative_pushes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(true).await;
    let channel = app.web_push_channel(&sk).await;
    let headers = [("authorization", format!("Bearer {pk}")), ("x-herald-user-id", "alice".to_string())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = app.call_headers(Method::GET, "/v1/me/vapid", &headers, None).await;
    assert_eq!(s, 200, "{v}");
    let (_, c) = app.get(&format!("/v1/channels/{channel}"), &sk).await;
    assert_eq!(
        (v["channel_id"].as_str(), v["vapid_public_key"].clone()),
        (Some(channel.as_str()), c["vapid_public_key"].clone())
    );
    assert_error(
        &app.call_headers(Method::GET, "/v1/me/vapid?channel_id=nope", &headers, None).await,
        404,
        "not_found",
    );

    // A declarative send needs somewhere to navigate.
    let push = MockPush::start().await;
    let browser = subscribe(&app, &pk, "alice", &push.endpoint("d"), json!(null)).await;
    let got = app
        .post(
            "/v1/notifications",
            &sk,
            json!({"to": {"user": "alice"}, "title": "T", "web_push": {"declarative": true}}),
        )
        .await;
    assert_field(&got, "url", "required");
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "T", "body": "B", "url": "https://app.example/x", "badge": 2, "web_push": {"declarative": true}})).await;
    app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    let (payload, _) = receipt_of(&browser, &wait_for(&push, 1).await[0]);
    assert_eq!(payload["web_push"], 8030, "{payload}");
    assert_eq!(payload["mutable"], true);
    assert_eq!(payload["app_badge"], 2);
    assert_eq!(payload["notification"]["navigate"], "https://app.example/x");
    assert_eq!(payload["notification"]["body"], "B");
    assert!(payload.get("herald").is_none() && payload["web_push"].is_number());
    // A channel in the declarative format needs a default URL, then uses it.
    let got = app
        .call(
            Method::PATCH,
            &format!("/v1/channels/{channel}"),
            Some(&sk),
            Some(json!({"config": {"payload_format": "declarative"}})),
        )
        .await;
    assert_field(&got, "config.default_url", "required");
    let (s, c) = app
        .call(
            Method::PATCH,
            &format!("/v1/channels/{channel}"),
            Some(&sk),
            Some(json!({"config": {"payload_format": "declarative", "default_url": "https://app.example/"}})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    // Workers reuse a channel's configuration for up to 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "T2"})).await;
    app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    let (payload, _) = receipt_of(&browser, &wait_for(&push, 2).await[1]);
    assert_eq!(payload["notification"]["navigate"], "https://app.example/", "{payload}");
}

both_backends!(
    cors_follows_the_account_and_spares_backend_routes,
    receipts_are_recorded_once_and_announced,
    renewals_replace_one_subscription,
    vapid_key_and_declarative_pushes,
);
