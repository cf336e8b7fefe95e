//! The outside review's reproduced cases (issue "hardening"), each on both backends: one device
//! is one subscription, every error in its surface's format, NUL refused at the edge, erasure
//! announced, clients confined to their topics, the `auth` secret never shown, failed
//! authentications budgeted, and user tokens pinned to one key, audience and issuer.

use herald_providers::mock::{MockApns, MockApnsConfig, fixtures};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::MockPush;

async fn session(app: &TestApp, sk: &str, user: &str) -> String {
    let (status, s) = app.post("/v1/sessions", sk, json!({"user": user})).await;
    assert_eq!(status, 201, "{s}");
    s["session_id"].as_str().or(s["token"].as_str()).unwrap().to_string()
}

/// A raw request: bytes in, status and body text out.
async fn raw(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut req = app.http.request(method, format!("{}{path}", app.base)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = res.text().await.unwrap();
    if status >= 400 {
        assert!(ct.starts_with("application/json"), "{path}: {status} answered {ct:?}: {text}");
    }
    (status, text)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn active_subscriptions(app: &TestApp) -> i64 {
    app.scalar_i64("SELECT COUNT(*) FROM subscriptions WHERE status = 'active'").await
}

async fn padded_endpoints_are_one_subscription(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (account, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let push = MockPush::start().await;
    let ua = herald_providers::webpush::testing::UaKeyPair::generate();
    let endpoint = push.endpoint("browser-1");
    let session = session(&app, &sk, "alice").await;
    let upper = endpoint.replacen("http://127.0.0.1", "HTTP://127.0.0.1", 1);
    let mut ids = Vec::new();
    for spelling in [endpoint.clone(), format!(" {endpoint}"), format!("{endpoint}\n"), format!("\t{endpoint}"), upper]
    {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("session_id", &session)
            .append_pair("endpoint", &spelling)
            .append_pair("key_p256dh", &ua.p256dh_b64())
            .append_pair("key_auth", &ua.auth_b64())
            .finish();
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (status, text) =
            raw(&app, Method::POST, &format!("/compat/doboard/{account}/push_subscribe"), &headers, body.into()).await;
        assert_eq!(status, 200, "{text}");
        let v = json_of(&text);
        assert_eq!(v["data"]["operation_status"], "SUCCESS", "{spelling:?}: {text}");
        ids.push(v["data"]["push_subscription_id"].as_i64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one browser, one subscription: {ids:?}");
    // The native API with btoa()-style keys (standard alphabet, padded) is the same device too.
    use base64::Engine;
    let std_b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(herald_core::validate::b64url(s).unwrap());
    let settings = json!({"endpoint": format!("{endpoint} "), "keys": {"p256dh": std_b64(&ua.p256dh_b64()), "auth": std_b64(&ua.auth_b64())}});
    let (status, sub) = app.post("/v1/users/alice/subscriptions", &sk, json!({"settings": settings})).await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["id"].as_i64(), Some(ids[0]));
    assert_eq!(sub["identifier"], endpoint);
    assert_eq!(sub["settings"]["p256dh"], ua.p256dh_b64(), "stored as unpadded base64url");
    assert!(sub["settings"].get("auth").is_none(), "the auth secret is never shown: {sub}");
    assert_eq!(active_subscriptions(&app).await, 1);
    let sent = app.send(&sk, json!({"to": {"user": "alice"}, "title": "once"})).await;
    app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(push.received().len(), 1, "one send reaches the browser once");
    // Whitespace inside the endpoint is refused, not stored.
    let before = app.snapshot().await;
    let inner = json!({"settings": {"endpoint": format!("{endpoint}/a b"), "p256dh": P256DH, "auth": AUTH}});
    let got = app.post("/v1/users/alice/subscriptions", &sk, inner).await;
    assert_field(&got, "settings.endpoint", "invalid");
    assert_eq!(app.snapshot().await, before);
}

async fn apns_tokens_in_any_case_are_one_device(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let (status, c) = app
        .post(
            "/v1/channels",
            &sk,
            json!({"name": "ios", "type": "apns", "config": fixtures::apns_channel_config(mock.base_url())}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let token = "ab".repeat(32);
    let (s1, a) = app.post("/v1/users/alice/subscriptions", &sk, json!({"settings": {"token": token}})).await;
    assert_eq!(s1, 201, "{a}");
    let (s2, bob) =
        app.post("/v1/users/bob/subscriptions", &sk, json!({"settings": {"token": token.to_uppercase()}})).await;
    assert_eq!(s2, 201, "{bob}");
    assert_eq!(bob["identifier"], token, "stored lower-case");
    let (_, a) = app.get(&format!("/v1/subscriptions/{}", a["id"]), &sk).await;
    assert_eq!((a["status"].as_str(), a["inactive_reason"].as_str()), (Some("inactive"), Some("moved")), "{a}");
    assert_eq!(active_subscriptions(&app).await, 1, "one phone, one owner");
}

async fn caller_identifiers_do_not_make_two_owners(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(true).await;
    let channel = app.web_push_channel(&sk).await;
    let endpoint = "https://fcm.googleapis.com/fcm/send/one-browser";
    let path = format!("/compat/notiflows/user/v1/channels/{channel}/subscriptions");
    let mut ids = Vec::new();
    for (user, identifier) in [("alice", "alice-laptop"), ("bob", "bob-laptop")] {
        let headers = [("x-notiflows-api-key", pk.as_str()), ("x-notiflows-user-id", user)];
        let body = json!({"identifier": identifier, "settings": web_push_settings(endpoint)});
        let (status, s) = app.call_headers(Method::POST, &path, &headers, Some(body)).await;
        assert_eq!(status, 201, "{s}");
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    let (_, alice) = app.get(&format!("/v1/subscriptions/{}", ids[0]), &sk).await;
    assert_eq!(alice["inactive_reason"], "moved", "{alice}");
    assert_eq!(active_subscriptions(&app).await, 1);
    // The same user naming the device with a new identifier keeps one subscription.
    let headers = [("x-notiflows-api-key", pk.as_str()), ("x-notiflows-user-id", "bob")];
    let body = json!({"identifier": "bob-renamed", "settings": web_push_settings(endpoint)});
    let (status, s) = app.call_headers(Method::POST, &path, &headers, Some(body)).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["id"].as_str(), Some(ids[1].as_str()));
    assert_eq!(active_subscriptions(&app).await, 1);
}

async fn legacy_rows_are_canonicalised_and_merged_on_open(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let endpoint = "https://fcm.googleapis.com/fcm/send/legacy";
    let (_, first) = app
        .post("/v1/users/alice/subscriptions", &sk, json!({"settings": web_push_settings(endpoint), "topics": ["a"]}))
        .await;
    let (_, second) = app
        .post(
            "/v1/users/alice/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/other"), "topics": ["b"]}),
        )
        .await;
    let (_, bobs) = app
        .post(
            "/v1/users/bob/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/bob")}),
        )
        .await;
    // Make them look as rows written before canonical addresses existed: three spellings of one
    // browser (two for alice, one for bob), never canonicalised.
    let (a, s, bo) = (first["id"].as_i64().unwrap(), second["id"].as_i64().unwrap(), bobs["id"].as_i64().unwrap());
    let padded = format!(" {}", endpoint.replace("fcm.googleapis.com", "FCM.googleapis.com:443"));
    app.execute(&format!(
        "UPDATE subscriptions SET address = NULL, last_seen_at = last_seen_at + 100000 WHERE id = {s}"
    ))
    .await;
    app.execute(&format!(
        "UPDATE subscriptions SET address = NULL, identifier = '{padded}', settings = '{{\"endpoint\": \"{padded}\", \"p256dh\": \"{P256DH}\", \"auth\": \"{AUTH}\"}}' WHERE id = {s}"
    ))
    .await;
    app.execute(&format!("UPDATE subscriptions SET address = NULL WHERE id IN ({a}, {bo})")).await;
    app.execute(&format!(
        "UPDATE subscriptions SET identifier = '{endpoint}\n', settings = '{{\"endpoint\": \"{endpoint}\", \"p256dh\": \"{P256DH}\", \"auth\": \"{AUTH}\"}}', last_seen_at = last_seen_at - 100000 WHERE id = {bo}"
    ))
    .await;
    app.reopen().await;
    // Alice's two rows are one device: the most recently seen is kept with both topics.
    let (_, kept) = app.get(&format!("/v1/subscriptions/{s}"), &sk).await;
    assert_eq!(kept["status"], "active", "{kept}");
    assert_eq!(kept["identifier"], endpoint);
    let mut topics: Vec<&str> = kept["topics"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    topics.sort();
    assert_eq!(topics, ["a", "b"]);
    let (_, merged) = app.get(&format!("/v1/subscriptions/{a}"), &sk).await;
    assert_eq!((merged["status"].as_str(), merged["inactive_reason"].as_str()), (Some("inactive"), Some("merged")));
    // Bob's row, seen earlier, loses the device to alice.
    let (_, bob) = app.get(&format!("/v1/subscriptions/{bo}"), &sk).await;
    assert_eq!(bob["inactive_reason"], "moved", "{bob}");
    assert_eq!(active_subscriptions(&app).await, 1);
    // A registration now finds the canonical row.
    let (status, again) =
        app.post("/v1/users/alice/subscriptions", &sk, json!({"settings": web_push_settings(endpoint)})).await;
    assert_eq!((status.as_u16(), again["id"].as_i64()), (200, Some(s)));
}

async fn framework_errors_speak_each_surface(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.max_body_bytes = 2048).await;
    let (account, sk, _) = app.account(false).await;
    let big = vec![b'x'; 4096];
    let json_ct = [("content-type", "application/json")];
    let (s, t) = raw(
        &app,
        Method::POST,
        "/v1/notifications",
        &[("authorization", &format!("Bearer {sk}")), json_ct[0]],
        big.clone(),
    )
    .await;
    assert_eq!((s, json_of(&t)["error"]["code"].as_str()), (413, Some("payload_too_large")), "{t}");
    let (s, t) =
        raw(&app, Method::POST, &format!("/compat/doboard/{account}/push_subscribe"), &json_ct, big.clone()).await;
    assert_eq!((s, json_of(&t)["data"]["operation_status"].as_str()), (413, Some("FAILED")), "{t}");
    let (s, t) = raw(&app, Method::POST, "/compat/brightpattern/clientweb/api/v1/chats", &json_ct, big.clone()).await;
    assert_eq!((s, json_of(&t)["error_code"].as_u64()), (406, Some(406)), "{t}");
    let (s, t) = raw(&app, Method::POST, "/compat/discord/users/@me/devices", &json_ct, big.clone()).await;
    assert_eq!((s, json_of(&t)["code"].as_u64()), (413, Some(40005)), "{t}");
    let (s, t) = raw(&app, Method::POST, "/compat/bnotify/channels/x/notifications/u", &json_ct, big).await;
    assert_eq!((s, json_of(&t)["statusCode"].as_u64()), (413, Some(413)), "{t}");
    // Methods a route does not have.
    for path in ["/v1/notifications", "/admin/v1/accounts"] {
        let (s, t) = raw(&app, Method::PUT, path, &[], Vec::new()).await;
        assert_eq!((s, json_of(&t)["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{path}: {t}");
    }
    let (s, t) = raw(&app, Method::PATCH, "/compat/discord/users/@me/devices", &[], Vec::new()).await;
    assert_eq!((s, json_of(&t)["message"].as_str()), (405, Some("405: Method Not Allowed")), "{t}");
    let (s, t) = raw(&app, Method::GET, "/compat/discord/nope", &[], Vec::new()).await;
    assert_eq!((s, json_of(&t)["message"].as_str()), (404, Some("404: Not Found")), "{t}");
    // Path segments that are not UTF-8.
    let (s, t) = raw(
        &app,
        Method::POST,
        "/compat/brightpattern/clientweb/api/v2/chats/%FF%FE/notifications",
        &json_ct,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((s, json_of(&t)["error_code"].as_u64()), (403, Some(403)), "{t}");
    let (s, t) = raw(&app, Method::GET, "/compat/doboard/%FF/push_subscribe", &[], Vec::new()).await;
    assert_eq!((s, json_of(&t)["data"]["operation_status"].as_str()), (401, Some("FAILED")), "{t}");
    let (s, t) =
        raw(&app, Method::GET, "/v1/subscriptions/%FF", &[("authorization", &format!("Bearer {sk}"))], Vec::new())
            .await;
    assert_eq!((s, json_of(&t)["error"]["details"]["reason"].as_str()), (400, Some("invalid_param")), "{t}");
}

async fn doboard_multipart_and_discord_required_sync_tokens(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (account, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let session = session(&app, &sk, "alice").await;
    // What a browser's FormData sends.
    let boundary = "----herald-test-boundary";
    let mut form = String::new();
    for (name, value) in [
        ("session_id", session.as_str()),
        ("endpoint", "https://fcm.googleapis.com/fcm/send/multipart"),
        ("key_p256dh", P256DH),
        ("key_auth", AUTH),
    ] {
        form.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    form.push_str(&format!("--{boundary}--\r\n"));
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (s, t) = raw(
        &app,
        Method::POST,
        &format!("/compat/doboard/{account}/push_subscribe"),
        &[("content-type", &ct)],
        form.into(),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let v = json_of(&t);
    assert_eq!(v["data"]["operation_status"], "SUCCESS", "{v}");
    let (s, t) = raw(
        &app,
        Method::POST,
        &format!("/compat/doboard/{account}/push_subscribe"),
        &[("content-type", "text/plain")],
        b"session_id=x".to_vec(),
    )
    .await;
    assert_eq!(
        (s, json_of(&t)["data"]["error_message"].as_str()),
        (400, Some("Bad Request")),
        "unreadable, not 401: {t}"
    );

    let headers = [("authorization", session.as_str())];
    let body = json!({"provider": "gcm", "token": "fcm-token-1"});
    let (s, v) = app.call_headers(Method::PUT, "/compat/discord/users/@me/devices/sync", &headers, Some(body)).await;
    assert_eq!((s.as_u16(), v["code"].as_u64()), (400, Some(50035)), "{v}");
    assert_eq!(v["errors"]["push_sync_tokens"]["_errors"][0]["code"], "BASE_TYPE_REQUIRED", "{v}");
}

async fn nul_is_refused_at_the_edge_on_every_surface(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (account, sk, pk) = app.account(false).await;
    let channel = app.web_push_channel(&sk).await;
    let session = session(&app, &sk, "alice").await;
    let bearer = format!("Bearer {sk}");
    let before = app.snapshot().await;
    type Probe<'a> = (Method, String, Vec<(&'a str, String)>, Vec<u8>);
    let probes: Vec<Probe> = vec![
        (Method::GET, "/v1/channels/a%00b".into(), vec![("authorization", bearer.clone())], vec![]),
        (Method::PUT, "/v1/users/al%00ice".into(), vec![("authorization", bearer.clone())], vec![]),
        (Method::GET, "/v1/subscriptions?cursor=%00".into(), vec![("authorization", bearer.clone())], vec![]),
        (Method::POST, "/v1/channels".into(), vec![("authorization", bearer.clone()), ("content-type", "application/json".into())], br#"{"name":"a\u0000","type":"web_push"}"#.to_vec()),
        (Method::POST, "/v1/users/alice/subscriptions".into(), vec![("authorization", bearer.clone()), ("content-type", "application/json".into())], format!(r#"{{"identifier":"x\u0000","settings":{{"endpoint":"https://fcm.googleapis.com/x","p256dh":"{P256DH}","auth":"{AUTH}"}}}}"#).into_bytes()),
        (Method::POST, "/v1/webhooks".into(), vec![("authorization", bearer.clone()), ("content-type", "application/json".into())], br#"{"url":"https://example.com/\u0000"}"#.to_vec()),
        (Method::POST, "/admin/v1/accounts".into(), vec![("authorization", format!("Bearer {ADMIN_TOKEN}")), ("content-type", "application/json".into())], br#"{"name":"a\u0000b"}"#.to_vec()),
        (Method::GET, format!("/compat/doboard/{account}/push_subscribe?session_id=ses_%00"), vec![], vec![]),
        (Method::POST, format!("/compat/doboard/{account}/push_subscribe"), vec![("content-type", "application/x-www-form-urlencoded".into())], format!("session_id={session}&endpoint=%00").into_bytes()),
        (Method::GET, format!("/compat/bnotify/channels/{channel}/subscriptions/iu%00id"), vec![("x-channel-api-key", "ck_x".into())], vec![]),
        (Method::POST, "/compat/brightpattern/clientweb/api/v2/chats/c%00/notifications".into(), vec![("authorization", format!("MOBILE-API-140-327-PLAIN appId=\"{pk}\", clientId=\"c\""))], b"{}".to_vec()),
        (Method::POST, "/compat/discord/users/@me/devices".into(), vec![("authorization", session.clone()), ("content-type", "application/json".into())], br#"{"provider":"gcm","token":"t\u0000"}"#.to_vec()),
        (Method::POST, format!("/compat/notiflows/user/v1/channels/{channel}/subscriptions"), vec![("x-notiflows-api-key", pk.clone()), ("content-type", "application/json".into())], br#"{"settings":{"endpoint":"\u0000"}}"#.to_vec()),
    ];
    for (method, path, headers, body) in probes {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, text) = raw(&app, method, &path, &headers, body).await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
        assert!(!text.contains("0x00") && !text.contains("invalid byte sequence"), "{path}: {text}");
    }
    assert_eq!(app.snapshot().await, before, "a refusal changes nothing");
}

async fn erasure_announces_every_subscription(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let receiver = MockPush::start().await;
    let (status, w) = app
        .post("/v1/webhooks", &sk, json!({"url": receiver.endpoint("hook"), "events": ["subscription.deleted"]}))
        .await;
    assert_eq!(status, 201, "{w}");
    for i in 0..3 {
        let settings = web_push_settings(&format!("https://fcm.googleapis.com/fcm/send/e{i}"));
        app.post("/v1/users/alice/subscriptions", &sk, json!({"settings": settings})).await;
    }
    let (status, _) = app.call(Method::DELETE, "/v1/users/alice", Some(&sk), None).await;
    assert_eq!(status, 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while receiver.received().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "expected 3 subscription.deleted events");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for r in receiver.received() {
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event["type"], "subscription.deleted");
        assert_eq!(event["data"]["user"], "alice");
        assert!(event["data"]["settings"].get("auth").is_none(), "no auth secret in webhooks: {event}");
    }
}

async fn clients_are_confined_to_their_topics(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (account, sk, pk) = app.account(true).await;
    app.web_push_channel(&sk).await;
    let me = [("authorization", format!("Bearer {pk}")), ("x-herald-user-id", "mallory".to_string())];
    let me: Vec<(&str, &str)> = me.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/m")});
    let (status, sub) = app.call_headers(Method::POST, "/v1/me/subscriptions", &me, Some(body)).await;
    assert_eq!(status, 201, "{sub}");
    assert!(sub["settings"].get("auth").is_none(), "{sub}");
    let id = sub["id"].as_i64().unwrap();
    let before = app.snapshot().await;
    let got =
        app.call_headers(Method::PUT, &format!("/v1/me/subscriptions/{id}/topics/chat:someone-else"), &me, None).await;
    assert_error(&got, 403, "forbidden");
    assert_eq!(got.1["error"]["details"]["required_scope"], "topics:manage");
    let got = app
        .call_headers(Method::PATCH, &format!("/v1/me/subscriptions/{id}"), &me, Some(json!({"topics": ["chat:x"]})))
        .await;
    assert_error(&got, 403, "forbidden");
    let body = json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/m2"), "topics": ["chat:y"]});
    let got = app.call_headers(Method::POST, "/v1/me/subscriptions", &me, Some(body)).await;
    assert_error(&got, 403, "forbidden");
    assert_eq!(app.snapshot().await, before, "nothing stored");
    // The account reserves a prefix and lists what clients may manage.
    let policy = json!({"reserved_topic_prefixes": ["billing."], "client_topic_patterns": ["news.*"]});
    let (status, acct) =
        app.call(Method::PATCH, &format!("/admin/v1/accounts/{account}"), Some(ADMIN_TOKEN), Some(policy)).await;
    assert_eq!(status, 200, "{acct}");
    assert_eq!(acct["client_topic_patterns"], json!(["news.*"]));
    let (s, _) =
        app.call_headers(Method::PUT, &format!("/v1/me/subscriptions/{id}/topics/news.sport"), &me, None).await;
    assert_eq!(s, 200);
    for refused in ["weather", "billing.invoices"] {
        let got =
            app.call_headers(Method::PUT, &format!("/v1/me/subscriptions/{id}/topics/{refused}"), &me, None).await;
        assert_error(&got, 403, "forbidden");
    }
    // The backend is never confined.
    let (s, v) =
        app.call(Method::PUT, &format!("/v1/subscriptions/{id}/topics/billing.invoices"), Some(&sk), None).await;
    assert_eq!(s, 200, "{v}");
    // A client may keep topics the backend gave it when it replaces its list.
    let got = app
        .call_headers(
            Method::PATCH,
            &format!("/v1/me/subscriptions/{id}"),
            &me,
            Some(json!({"topics": ["billing.invoices", "news.tech"]})),
        )
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
}

async fn failed_authentications_are_budgeted(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.auth_failures_per_minute = 5).await;
    let (account, sk, _) = app.account(false).await;
    for _ in 0..5 {
        let got = app.get("/v1/channels", "sk_wrongwrongwrongwrong").await;
        assert_error(&got, 401, "unauthenticated");
    }
    let got = app.get("/v1/channels", "sk_wrongwrongwrongwrong").await;
    assert_error(&got, 429, "rate_limited");
    // The address is out of budget: even a good key waits, and every surface says so its way.
    let res = app.http.get(format!("{}/v1/channels", app.base)).bearer_auth(&sk).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let (s, t) =
        raw(&app, Method::GET, &format!("/compat/doboard/{account}/push_subscribe?session_id=x"), &[], vec![]).await;
    assert_eq!((s, json_of(&t)["data"]["error_message"].as_str()), (429, Some("Too Many Requests")), "{t}");
    let (s, t) =
        raw(&app, Method::POST, "/compat/discord/users/@me/devices", &[("authorization", "ses_x")], vec![]).await;
    assert_eq!((s, json_of(&t)["message"].as_str()), (429, Some("You are being rate limited.")), "{t}");
    // Per key too: the same bad key from another address is refused before it is checked.
    let other =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let res =
        other.get(format!("{}/v1/channels", app.base)).bearer_auth("sk_wrongwrongwrongwrong").send().await.unwrap();
    assert_eq!(res.status(), 429);
    let res = other.get(format!("{}/v1/channels", app.base)).bearer_auth(&sk).send().await.unwrap();
    assert_eq!(res.status(), 200, "another address with a good key is not punished");
}

async fn user_tokens_are_pinned_to_one_key_audience_and_issuer(b: Backend) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let public = fixture("ec_public.pem");
    let private = EncodingKey::from_ec_pem(fixture("ec_private.pem").as_bytes()).unwrap();
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let token = |kid: Option<&str>, claims: Value| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        encode(&h, &claims, &private).unwrap()
    };
    let (s, k1) = app.post("/v1/signing-keys", &sk, json!({"algorithm": "ES256", "public_key_pem": public, "audience": "herald", "issuer": "https://app.example"})).await;
    assert_eq!(s, 201, "{k1}");
    let kid = k1["id"].as_str().unwrap();
    let list = |t: String| {
        let app = &app;
        let pk = pk.clone();
        async move {
            app.call_headers(
                Method::GET,
                "/v1/me/subscriptions",
                &[("authorization", &format!("Bearer {pk}")), ("x-herald-user-token", &t)],
                None,
            )
            .await
        }
    };
    let good = json!({"sub": "alice", "exp": exp, "aud": "herald", "iss": "https://app.example"});
    assert_eq!(list(token(Some(kid), good.clone())).await.0, StatusCode::OK);
    assert_eq!(
        list(token(None, good.clone())).await.0,
        StatusCode::OK,
        "one key of the algorithm: kid may be left out"
    );
    for bad in [
        json!({"sub": "alice", "exp": exp, "aud": "other", "iss": "https://app.example"}),
        json!({"sub": "alice", "exp": exp, "aud": "herald", "iss": "https://evil.example"}),
        json!({"sub": "alice", "exp": exp, "iss": "https://app.example"}),
    ] {
        assert_error(&list(token(Some(kid), bad)).await, 401, "unauthenticated");
    }
    let (s, _) = app.post("/v1/signing-keys", &sk, json!({"algorithm": "ES256", "public_key_pem": public})).await;
    assert_eq!(s, 201);
    let got = list(token(None, good.clone())).await;
    assert_error(&got, 401, "unauthenticated");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("kid"), "{}", got.1);
    assert_eq!(list(token(Some(kid), good)).await.0, StatusCode::OK);
}

both_backends!(
    padded_endpoints_are_one_subscription,
    apns_tokens_in_any_case_are_one_device,
    caller_identifiers_do_not_make_two_owners,
    legacy_rows_are_canonicalised_and_merged_on_open,
    framework_errors_speak_each_surface,
    doboard_multipart_and_discord_required_sync_tokens,
    nul_is_refused_at_the_edge_on_every_surface,
    erasure_announces_every_subscription,
    clients_are_confined_to_their_topics,
    failed_authentications_are_budgeted,
    user_tokens_are_pinned_to_one_key_audience_and_issuer,
);
