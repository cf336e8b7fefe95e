//! Native pairing codes: minting with a scannable QR code, single-use redemption (also under
//! concurrency), 410 on reuse and expiry, 404 for unknown codes, and the hosted pages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_providers::webpush::testing::UaKeyPair;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::MockPush;

/// Reads a `data:image/gif;base64,…` QR code back to its text, as a phone camera would.
pub fn decode_qr(data_uri: &str) -> String {
    let b64 = data_uri.strip_prefix("data:image/gif;base64,").expect("a GIF data URI");
    let bytes = STANDARD.decode(b64).expect("base64");
    assert_eq!(&bytes[..6], b"GIF89a", "a GIF");
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(&bytes[..]).expect("GIF header");
    let (w, h) = (usize::from(decoder.width()), usize::from(decoder.height()));
    let frame = decoder.read_next_frame().expect("GIF frame").expect("one frame").clone();
    assert_eq!((usize::from(frame.width), usize::from(frame.height)), (w, h));
    let luma = |x: usize, y: usize| {
        let p = &frame.buffer[(y * w + x) * 4..(y * w + x) * 4 + 3];
        ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 3) as u8
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

/// A `PushSubscription.toJSON()` as a browser would post it, for a fresh key pair.
pub fn browser_subscription(mock: &MockPush, name: &str) -> (UaKeyPair, Value) {
    let ua = UaKeyPair::generate();
    let json = json!({"endpoint": mock.endpoint(name), "expirationTime": null,
        "keys": {"p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()}});
    (ua, json)
}

struct Setup {
    app: TestApp,
    sk: String,
    channel: String,
    mock: MockPush,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let channel = app.web_push_channel(&sk).await;
    Setup { app, sk, channel, mock: MockPush::start().await }
}

impl Setup {
    async fn code(&self, user: &str, ttl: Option<i64>) -> Value {
        let mut body = json!({"channel_id": self.channel, "user": user});
        if let Some(ttl) = ttl {
            body["ttl_seconds"] = json!(ttl);
        }
        let (status, code) = self.app.post("/v1/pairing-codes", &self.sk, body).await;
        assert_eq!(status, 201, "{code}");
        code
    }

    async fn redeem(&self, code: &str, body: Value) -> (StatusCode, Value) {
        self.app.call(Method::POST, &format!("/v1/pair/{code}"), None, Some(body)).await
    }

    async fn page(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let res = self.app.http.get(format!("{}{path}", self.app.base)).send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }
}

async fn code_is_minted_with_a_scannable_qr_and_redeemed_once(b: Backend) {
    let s = setup(b).await;
    let created = s.code("alice", None).await;
    let code = created["code"].as_str().unwrap();
    assert!(code.len() >= 22 && code.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{code}");
    assert_eq!(created["deep_link"], format!("{}/qrcode/{code}", s.app.base));
    assert_eq!(decode_qr(created["qrcode"].as_str().unwrap()), created["deep_link"].as_str().unwrap());
    assert_eq!((created["channel_id"].as_str(), created["user"].as_str()), (Some(s.channel.as_str()), Some("alice")));
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_secs = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((3590..=3600).contains(&in_secs), "default lifetime one hour: {in_secs}");
    // Codes are random: a second one differs.
    assert_ne!(s.code("alice", None).await["code"], created["code"]);

    let (_, settings) = browser_subscription(&s.mock, "alice-phone");
    let (status, sub) = s.redeem(code, json!({"settings": settings})).await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!((sub["user"].as_str(), sub["channel_id"].as_str()), (Some("alice"), Some(s.channel.as_str())));
    assert_eq!(
        (sub["status"].as_str(), sub["identifier"].as_str()),
        (Some("active"), Some(s.mock.endpoint("alice-phone").as_str()))
    );
    // The native API sees it under the user.
    let (_, list) = s.app.get("/v1/users/alice/subscriptions", &s.sk).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["id"], sub["id"]);

    // Used: 410, for the API and for the page; nothing more is stored.
    let before = s.app.snapshot().await;
    let (_, other) = browser_subscription(&s.mock, "mallory");
    assert_error(&s.redeem(code, json!({"settings": other})).await, 410, "gone");
    assert_eq!(s.app.snapshot().await, before);
    let (status, _, html) = s.page(&format!("/qrcode/{code}")).await;
    assert_eq!(status, 410);
    assert!(html.contains("already used"), "{html}");
}

async fn expired_code_is_gone(b: Backend) {
    let s = setup(b).await;
    let code = s.code("bob", Some(60)).await["code"].as_str().unwrap().to_string();
    s.app.execute("UPDATE pairing_codes SET expires_at = expires_at - 61000").await;
    let (_, settings) = browser_subscription(&s.mock, "bob");
    let got = s.redeem(&code, json!({"settings": settings})).await;
    assert_error(&got, 410, "gone");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("expired"), "{}", got.1);
    let (status, _, html) = s.page(&format!("/qrcode/{code}")).await;
    assert_eq!(status, 410);
    assert!(html.contains("expired"), "{html}");
    assert_eq!(s.app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await, 0);
}

async fn concurrent_redeems_have_one_winner(b: Backend) {
    let s = setup(b).await;
    let code = s.code("carol", None).await["code"].as_str().unwrap().to_string();
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (_, settings) = browser_subscription(&s.mock, &format!("carol-{i}"));
        let req = s.app.http.post(format!("{}/v1/pair/{code}", s.app.base)).json(&json!({"settings": settings}));
        tries.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = tries.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 410).count(), 7, "{statuses:?}");
    assert_eq!(s.app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await, 1);
    let winner = s.app.scalar_i64("SELECT subscription_id FROM pairing_codes WHERE subscription_id IS NOT NULL").await;
    let (_, list) = s.app.get("/v1/users/carol/subscriptions", &s.sk).await;
    assert_eq!(list["data"][0]["id"], winner, "the code records the subscription it produced");
}

async fn unknown_codes_are_404_and_bad_input_is_refused(b: Backend) {
    let s = setup(b).await;
    let (_, settings) = browser_subscription(&s.mock, "x");
    for code in ["AAAAAAAAAAAAAAAAAAAAAA", "not%20a%20code", &"a".repeat(300)] {
        assert_error(&s.redeem(code, json!({"settings": settings})).await, 404, "not_found");
        let (status, headers, html) = s.page(&format!("/qrcode/{code}")).await;
        assert_eq!(status, 404, "{code}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(html.contains("not valid"), "{html}");
    }
    // Creating: credentials, a live channel of the account, a user, a sane lifetime.
    let body = json!({"channel_id": s.channel, "user": "alice"});
    assert_error(&s.app.call(Method::POST, "/v1/pairing-codes", None, Some(body)).await, 401, "unauthenticated");
    let (_, other_sk, _) = s.app.account(false).await;
    let foreign = json!({"channel_id": s.channel, "user": "alice"});
    assert_error(&s.app.post("/v1/pairing-codes", &other_sk, foreign).await, 404, "not_found");
    assert_field(
        &s.app.post("/v1/pairing-codes", &s.sk, json!({"channel_id": s.channel, "user": ""})).await,
        "user",
        "required",
    );
    let long_ttl = json!({"channel_id": s.channel, "user": "a", "ttl_seconds": 30 * 24 * 3600});
    assert_field(&s.app.post("/v1/pairing-codes", &s.sk, long_ttl).await, "ttl_seconds", "out_of_range");
    assert_field(&s.app.post("/v1/pairing-codes", &s.sk, json!({"user": "a"})).await, "channel_id", "required");

    // Invalid settings are refused and leave the code usable.
    let code = s.code("dave", None).await["code"].as_str().unwrap().to_string();
    let bad = json!({"settings": {"endpoint": s.mock.endpoint("d"), "keys": {"p256dh": "nope", "auth": "nope"}}});
    assert_field(&s.redeem(&code, bad).await, "settings.p256dh", "invalid");
    let (_, settings) = browser_subscription(&s.mock, "dave");
    assert_eq!(s.redeem(&code, json!({"settings": settings})).await.0, 201);
}

async fn pages_render_without_external_resources(b: Backend) {
    let s = setup(b).await;
    let (_, channel) = s.app.get(&format!("/v1/channels/{}", s.channel), &s.sk).await;
    let vapid = channel["vapid_public_key"].as_str().unwrap();
    let code = s.code("<b>eve</b>", None).await["code"].as_str().unwrap().to_string();
    let (status, headers, html) = s.page(&format!("/qrcode/{code}")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(html.contains(&format!("data-vapid=\"{vapid}\"")), "the channel's VAPID key: {html}");
    assert!(html.contains(&format!("data-code=\"{code}\"")));
    assert!(html.contains(&format!("data-channel=\"{}\"", s.channel)));
    assert!(html.contains("acme") && html.contains(">web <"), "account and channel names: {html}");
    assert!(html.contains("&lt;b&gt;eve&lt;/b&gt;") && !html.contains("<b>eve"), "the user id, escaped: {html}");
    assert!(html.contains("<script src=\"/pages/pair.js\""));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "no external resource");

    let (status, headers, js) = s.page("/pages/pair.js").await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "text/javascript; charset=utf-8"));
    // The page subscribes through the SDK in pairing mode, with Herald's own worker.
    for needle in ["Herald.init", "pairingCode", "vapidKey", "serviceWorker: \"/sw.js\""] {
        assert!(js.contains(needle), "pair.js uses {needle}");
    }
    assert!(html.contains("<script src=\"/sdk/herald.js\""), "the page loads the SDK from Herald");
    let (status, _, sw) = s.page("/sw.js").await;
    assert_eq!(status, 200);
    assert!(sw.contains("addEventListener(\"push\"") && sw.contains("showNotification"));
    assert!(sw.contains("/v1/receipts") && sw.contains("/v1/renewals"), "/sw.js is the SDK's worker");
    for asset in ["/pages/herald.css", "/manifest.webmanifest"] {
        assert_eq!(s.page(asset).await.0, 200, "{asset}");
    }
    let (status, headers, mobile) = s.page("/mobile").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(mobile.contains("Add to Home Screen") && mobile.contains("Allow"), "{mobile}");

    // A channel that is deleted takes its codes with it.
    s.app.call(Method::DELETE, &format!("/v1/channels/{}", s.channel), Some(&s.sk), None).await;
    assert_eq!(s.page(&format!("/qrcode/{code}")).await.0, 410);
}

both_backends!(
    code_is_minted_with_a_scannable_qr_and_redeemed_once,
    expired_code_is_gone,
    concurrent_redeems_have_one_winner,
    unknown_codes_are_404_and_bad_input_is_refused,
    pages_render_without_external_resources,
);
