//! The network-facing fuzz suite: on each backend, 1,200 requests mutated from valid ones across
//! every surface (truncated and deeply nested JSON, wrong types, huge numbers and strings, NUL and
//! invalid UTF-8, odd ids, cursors and headers). Every answer must be below 500, an error must be
//! JSON in its surface's documented shape, and a refusal must leave the database unchanged.
//! Deterministic (seeded), so a failure repeats; the seed and the request are in the message.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// Requests per backend.
const RUNS: usize = 1200;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Debug)]
struct Probe {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn probe(method: Method, path: String, headers: &[(&str, &str)], body: Option<Value>) -> Probe {
    let mut headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Probe { method, path, headers, body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default() }
}

/// Odd values for ids, cursors and strings.
const ODD: &[&str] = &[
    "%00",
    "%FF%FE",
    "-1",
    "0",
    "99999999999999999999999",
    "..%2F..",
    "%E2%80%AE",
    "a%20b",
    "%0A",
    "null",
    "00000000-0000-0000-0000-000000000000",
    "ZZZZ",
    "%F0%9F%92%A9",
    "1e309",
    "%C0%AF",
];

/// Values spliced into JSON bodies.
const INTERESTING: &[&[u8]] = &[
    b"null",
    b"-1",
    b"1e999",
    b"\"\\u0000\"",
    b"[]",
    b"{}",
    b"\"\xff\xfe\"",
    b"18446744073709551616",
    b"true",
    b"\"\\ud800\"",
    b"-0",
    b"1.5",
    b"\"a\\u0001b\"",
];

fn mutate(rng: &mut Rng, mut p: Probe) -> Probe {
    match rng.below(9) {
        // Byte-level damage to the body.
        0..=2 => {
            for _ in 0..=rng.below(3) {
                let at = if p.body.is_empty() { 0 } else { rng.below(p.body.len()) };
                match rng.below(4) {
                    0 if !p.body.is_empty() => {
                        p.body.remove(at);
                    }
                    1 => p.body.insert(at, rng.next() as u8),
                    2 => {
                        let piece = *rng.pick(INTERESTING);
                        p.body.splice(at..at, piece.iter().copied());
                    }
                    _ => p.body.truncate(at),
                }
            }
        }
        // Deep nesting.
        3 => {
            let depth = 50 + rng.below(5000);
            p.body = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        }
        // Wrong types and huge values for every field of a JSON body.
        4 => {
            if let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&p.body) {
                let keys: Vec<String> = obj.keys().cloned().collect();
                if let Some(k) = keys.get(rng.below(keys.len().max(1))) {
                    let v = match rng.below(5) {
                        0 => json!(12345678901234567890u64),
                        1 => json!("x".repeat(10_000 + rng.below(60_000))),
                        2 => json!([1, {"a": null}]),
                        3 => json!({"nested": {"deeper": "\u{0}"}}),
                        _ => json!(-1.5e300),
                    };
                    obj.insert(k.clone(), v);
                }
                p.body = Value::Object(obj).to_string().into_bytes();
            } else {
                p.body = b"\"just a string\"".to_vec();
            }
        }
        // Odd path segments.
        5 => {
            let segments: Vec<&str> = p.path.split('/').collect();
            let at = 1 + rng.below(segments.len().saturating_sub(1).max(1));
            let mut segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            if at < segments.len() {
                segments[at] = rng.pick(ODD).to_string();
            }
            p.path = segments.join("/");
        }
        // Odd query strings.
        6 => {
            let sep = if p.path.contains('?') { '&' } else { '?' };
            let q = match rng.below(4) {
                0 => format!("cursor={}", rng.pick(ODD)),
                1 => format!("limit={}", rng.pick(ODD)),
                2 => format!("status={}&topic={}", rng.pick(ODD), rng.pick(ODD)),
                _ => format!("{}={}", rng.pick(ODD), rng.pick(ODD)),
            };
            p.path = format!("{}{sep}{q}", p.path);
        }
        // Credentials and content types gone wrong.
        7 => {
            let i = rng.below(p.headers.len().max(1));
            if i < p.headers.len() {
                let odd = match rng.below(4) {
                    0 => String::new(),
                    1 => "Bearer ".to_string(),
                    2 => format!("Bearer sk_{}", "A".repeat(rng.below(3000))),
                    _ => "Bearer \u{00e9}t\u{00e9}".to_string(),
                };
                p.headers[i].1 = odd;
            }
        }
        _ => {
            p.headers.retain(|(k, _)| k != "content-type");
            let ct = *rng.pick(&[
                "text/plain",
                "multipart/form-data",
                "application/x-www-form-urlencoded",
                "application/xml",
            ]);
            p.headers.push(("content-type".into(), ct.into()));
        }
    }
    p
}

/// Whether an error body has the shape its surface documents.
fn documented_shape(path: &str, body: &Value) -> bool {
    if path.starts_with("/compat/doboard") {
        return body["data"]["operation_status"] == "FAILED";
    }
    if path.starts_with("/compat/brightpattern") {
        return body["error_code"].is_u64() && body["error_message"].is_string();
    }
    if path.starts_with("/compat/discord") {
        return body["message"].is_string() && (body["code"].is_u64() || body["retry_after"].is_u64());
    }
    if path.starts_with("/compat/bnotify") {
        return body["statusCode"].is_u64() && body.get("message").is_some();
    }
    body["error"]["code"].is_string() && body["error"]["request_id"].is_string() && body["error"]["status"].is_u64()
}

async fn mutated_requests_never_fail_the_server(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (account, sk, pk) = app.account(true).await;
    let channel = app.web_push_channel(&sk).await;
    let (_, ck) = app.post("/v1/keys", &sk, json!({"kind": "channel", "channel_id": channel})).await;
    let ck = ck["key"].as_str().or(ck["secret"].as_str()).unwrap_or("ck_missing").to_string();
    let (_, s) = app.post("/v1/sessions", &sk, json!({"user": "alice"})).await;
    let session = s["session_id"].as_str().or(s["token"].as_str()).unwrap().to_string();
    let (_, sub) = app
        .post(
            "/v1/users/alice/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/f")}),
        )
        .await;
    let sub = sub["id"].as_i64().unwrap();
    let skb = format!("Bearer {sk}");
    let pkb = format!("Bearer {pk}");
    let sesb = format!("Bearer {session}");
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let bp = format!("MOBILE-API-140-327-PLAIN appId=\"{pk}\", clientId=\"c1\"");
    let settings = web_push_settings("https://fcm.googleapis.com/fcm/send/g");
    let seeds = vec![
        probe(
            Method::POST,
            "/v1/notifications".into(),
            &[("authorization", &skb)],
            Some(json!({"to": {"user": "alice"}, "title": "t", "body": "b", "data": {"k": [1]}, "ttl": 60})),
        ),
        probe(
            Method::POST,
            "/v1/users/bob/subscriptions".into(),
            &[("authorization", &skb)],
            Some(json!({"settings": settings, "topics": ["a"]})),
        ),
        probe(
            Method::PATCH,
            format!("/v1/subscriptions/{sub}"),
            &[("authorization", &skb)],
            Some(json!({"muted": true, "topics": ["x"]})),
        ),
        probe(Method::GET, "/v1/subscriptions?limit=5".into(), &[("authorization", &skb)], None),
        probe(Method::PUT, "/v1/users/carol".into(), &[("authorization", &skb)], Some(json!({"properties": {"a": 1}}))),
        probe(
            Method::POST,
            "/v1/channels".into(),
            &[("authorization", &skb)],
            Some(json!({"name": "w2", "type": "web_push", "config": {"subject": "mailto:a@b.c"}})),
        ),
        probe(
            Method::POST,
            "/v1/webhooks".into(),
            &[("authorization", &skb)],
            Some(json!({"url": "https://example.com/h", "events": ["subscription.created"]})),
        ),
        probe(
            Method::POST,
            "/v1/pairing-codes".into(),
            &[("authorization", &skb)],
            Some(json!({"channel_id": channel, "user": "dave"})),
        ),
        probe(Method::POST, "/v1/pair/notacode".into(), &[], Some(json!({"settings": settings}))),
        probe(
            Method::POST,
            "/v1/me/subscriptions".into(),
            &[("authorization", &pkb), ("x-herald-user-id", "erin")],
            Some(json!({"settings": settings})),
        ),
        probe(Method::GET, "/v1/me/notifications".into(), &[("authorization", &sesb)], None),
        probe(
            Method::PATCH,
            format!("/admin/v1/accounts/{account}"),
            &[("authorization", &admin)],
            Some(json!({"rate_limit_per_minute": 6000})),
        ),
        probe(
            Method::POST,
            format!("/compat/doboard/{account}/push_subscribe"),
            &[],
            Some(
                json!({"session_id": session, "endpoint": "https://fcm.googleapis.com/fcm/send/d", "key_p256dh": P256DH, "key_auth": AUTH}),
            ),
        ),
        probe(
            Method::POST,
            format!("/compat/notiflows/user/v1/channels/{channel}/subscriptions"),
            &[("x-notiflows-api-key", &pk), ("x-notiflows-user-id", "fay")],
            Some(json!({"identifier": "i", "settings": settings})),
        ),
        probe(
            Method::POST,
            "/compat/brightpattern/clientweb/api/v1/chats?tenantUrl=x".into(),
            &[("authorization", &bp)],
            Some(json!({"phone_number": "1"})),
        ),
        probe(
            Method::POST,
            "/compat/brightpattern/clientweb/api/v2/chats/00000000-0000-0000-0000-000000000000/notifications".into(),
            &[("authorization", &bp)],
            Some(json!({"android_firebase_device_token": "tok"})),
        ),
        probe(
            Method::POST,
            "/compat/discord/users/@me/devices".into(),
            &[("authorization", &session)],
            Some(json!({"provider": "gcm", "token": "t1"})),
        ),
        probe(
            Method::PUT,
            "/compat/discord/users/@me/devices/sync".into(),
            &[("authorization", &session)],
            Some(json!({"provider": "gcm", "token": "t1", "push_sync_tokens": ["x"]})),
        ),
        probe(
            Method::GET,
            format!("/compat/bnotify/channels/{channel}/subscriptions"),
            &[("x-channel-api-key", &ck)],
            None,
        ),
        probe(
            Method::POST,
            format!("/compat/bnotify/channels/{channel}/notifications/alice"),
            &[("x-channel-api-key", &ck)],
            Some(json!({"title": "hello", "text": "world"})),
        ),
    ];
    let seed = 0x00F0_220A_u64 ^ if b == Backend::Sqlite { 1 } else { 2 };
    let mut rng = Rng(seed);
    let mut refused = 0;
    for i in 0..RUNS {
        let p = mutate(&mut rng, seeds[i % seeds.len()].clone());
        let before = app.snapshot().await;
        let mut req = app.http.request(p.method.clone(), format!("{}{}", app.base, p.path)).body(p.body.clone());
        for (k, v) in &p.headers {
            req = req.header(k, v);
        }
        let Ok(res) = req.send().await else {
            // The client refused to send it (an unencodable header): nothing reached Herald.
            continue;
        };
        let status = res.status().as_u16();
        let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let text = res.text().await.unwrap_or_default();
        let ctx = || format!("seed {seed:#x} run {i}: {} {} -> {status} {text}", p.method, p.path);
        assert!(status < 500, "{}", ctx());
        if status >= 400 {
            refused += 1;
            assert!(ct.starts_with("application/json"), "content type {ct:?}: {}", ctx());
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(documented_shape(&p.path, &body), "undocumented error shape: {}", ctx());
            assert_eq!(app.snapshot().await, before, "a refusal changed the database: {}", ctx());
        }
    }
    assert!(refused > RUNS / 2, "mutations should mostly be refused ({refused} of {RUNS})");
}

both_backends!(mutated_requests_never_fail_the_server);
