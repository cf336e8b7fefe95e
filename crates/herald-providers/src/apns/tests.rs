//! APNs payload, header, token and configuration tests; the end-to-end tests against the mock
//! live in `e2e_tests.rs`.

use herald_core::delivery::{Content, Options, Provider, Urgency};
use herald_core::model::{ChannelType, Environment, SubscriptionKind};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

use super::config::ApnsConfig;
use super::payload::{self, HeaderInput, PushType};
use super::token::{ProviderTokens, TOKEN_REFRESH_SECS, is_fresh, sign};
use super::*;
use crate::test_support::{self, EC_PRIVATE_PEM, EC_PUBLIC_PEM, alert};

fn payload_of(content: &Content, options: &Options, kind: SubscriptionKind) -> (Value, PushType) {
    let prepared = payload::prepare(content, options, kind, None).unwrap();
    (serde_json::from_slice(&prepared.body).unwrap(), prepared.push_type)
}

#[test]
fn alert_payload_maps_visible_fields_and_data() {
    let content = Content {
        badge: Some(json!(3)),
        sound: Some("ping.caf".into()),
        image: Some("https://img.example/a.png".into()),
        url: Some("https://app.example/chat/1".into()),
        data: Some(json!({"chat": 1, "aps": "dropped", "url": "overridden"})),
        tag: Some("t".into()),
        ..alert("Hi", "There")
    };
    let (payload, push_type) = payload_of(&content, &Options::default(), SubscriptionKind::Standard);
    assert_eq!(push_type, PushType::Alert);
    assert_eq!(
        payload,
        json!({
            "aps": {"alert": {"title": "Hi", "body": "There"}, "badge": 3, "sound": "ping.caf", "mutable-content": 1},
            "chat": 1,
            "url": "https://app.example/chat/1",
            "image": "https://img.example/a.png",
        })
    );
}

#[test]
fn data_only_content_is_a_background_push() {
    let content = Content { data: Some(json!({"sync": true})), ..Content::default() };
    let (payload, push_type) = payload_of(&content, &Options::default(), SubscriptionKind::Standard);
    assert_eq!(push_type, PushType::Background);
    assert_eq!(payload, json!({"aps": {"content-available": 1}, "sync": true}));
    // Apple requires priority 5 for background pushes, whatever the sender asked.
    let high = Options { urgency: Urgency::High, priority: Some("high".into()), ..Options::default() };
    assert_eq!(payload::priority(&high, PushType::Background), 5);
}

#[test]
fn badges_are_numbers_only() {
    let content = |badge: Value| Content { badge: Some(badge), ..alert("a", "b") };
    let badge = |c: Content| payload::base_payload(&c)["aps"].get("badge").cloned();
    assert_eq!(badge(content(json!("7"))), Some(json!(7)));
    assert_eq!(badge(content(json!("https://icon.example/b.png"))), None);
}

#[test]
fn overrides_merge_deeply_and_can_remove() {
    let options = Options {
        apns: Some(json!({
            "aps": {"alert": {"subtitle": "Sub"}, "category": "MSG", "interruption-level": "time-sensitive"},
            "url": null,
            "extra": {"k": "v"},
        })),
        ..Options::default()
    };
    let content = Content { url: Some("https://x".into()), ..alert("T", "B") };
    let (payload, _) = payload_of(&content, &options, SubscriptionKind::Standard);
    assert_eq!(
        payload,
        json!({
            "aps": {
                "alert": {"title": "T", "body": "B", "subtitle": "Sub"},
                "category": "MSG",
                "interruption-level": "time-sensitive",
            },
            "extra": {"k": "v"},
        })
    );
}

#[test]
fn an_override_that_adds_an_alert_makes_an_alert_push() {
    let options = Options { apns: Some(json!({"aps": {"alert": "Hello"}})), ..Options::default() };
    let (payload, push_type) = payload_of(&Content::default(), &options, SubscriptionKind::Standard);
    assert_eq!(push_type, PushType::Alert);
    assert_eq!(payload, json!({"aps": {"alert": "Hello"}}));
    let bad = Options { apns: Some(json!([1])), ..Options::default() };
    assert!(
        payload::prepare(&Content::default(), &bad, SubscriptionKind::Standard, None).unwrap_err().contains("APNs")
    );
}

/// Content whose payload is exactly `len` bytes (the body text pads it).
fn content_of_size(len: usize) -> Content {
    // With the receipt token the check reserves room for, as every delivery carries one.
    let overhead = payload::prepare(
        &alert("", ""),
        &Options::default(),
        SubscriptionKind::Voip,
        Some(payload::RECEIPT_PLACEHOLDER),
    )
    .unwrap()
    .body
    .len();
    alert("", &"x".repeat(len - overhead))
}

#[test]
fn payload_limits_are_4096_and_5120_for_voip() {
    let provider = ApnsProvider::new(&ProviderSettings::default()).unwrap();
    let check = |len: usize, kind| provider.check_payload(&content_of_size(len), &Options::default(), kind);
    assert_eq!(check(4096, SubscriptionKind::Standard), Ok(()));
    assert_eq!(
        check(4097, SubscriptionKind::Standard),
        Err("APNs payload is 4097 bytes; the limit is 4096".to_owned())
    );
    assert_eq!(check(5120, SubscriptionKind::Voip), Ok(()));
    assert_eq!(check(5121, SubscriptionKind::Voip), Err("APNs payload is 5121 bytes; the limit is 5120".to_owned()));
}

#[test]
fn long_collapse_ids_are_refused() {
    let options = |len: usize| Options { collapse_key: Some("c".repeat(len)), ..Options::default() };
    assert!(payload::prepare(&alert("a", "b"), &options(64), SubscriptionKind::Standard, None).is_ok());
    let err = payload::prepare(&alert("a", "b"), &options(65), SubscriptionKind::Standard, None).unwrap_err();
    assert_eq!(err, "APNs collapse id is 65 bytes; the limit is 64");
}

#[test]
fn priority_follows_urgency_and_explicit_priority() {
    let opts = |urgency, priority: Option<&str>| Options {
        urgency,
        priority: priority.map(str::to_owned),
        ..Options::default()
    };
    assert_eq!(payload::priority(&opts(Urgency::Normal, None), PushType::Alert), 5);
    assert_eq!(payload::priority(&opts(Urgency::High, None), PushType::Alert), 10);
    assert_eq!(payload::priority(&opts(Urgency::Low, Some("high")), PushType::Alert), 10);
    assert_eq!(payload::priority(&opts(Urgency::High, Some("normal")), PushType::Alert), 5);
    assert_eq!(payload::priority(&opts(Urgency::Normal, None), PushType::Voip), 10);
    assert_eq!(payload::priority(&opts(Urgency::High, Some("normal")), PushType::Voip), 5);
}

fn header_map(push_type: PushType, options: &Options) -> reqwest::header::HeaderMap {
    payload::headers(&HeaderInput {
        authorization: reqwest::header::HeaderValue::from_static("bearer x"),
        push_type,
        bundle_id: "com.example.app",
        message_id: test_support::MESSAGE_ID,
        options,
        expiration: 1_700_000_000,
    })
    .unwrap()
}

#[test]
fn headers_carry_type_topic_id_priority_expiration_and_collapse_id() {
    let options = Options { urgency: Urgency::High, collapse_key: Some("chat-1".into()), ..Options::default() };
    let h = header_map(PushType::Alert, &options);
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(get("authorization").as_deref(), Some("bearer x"));
    assert_eq!(get("apns-push-type").as_deref(), Some("alert"));
    assert_eq!(get("apns-topic").as_deref(), Some("com.example.app"));
    assert_eq!(get("apns-id").as_deref(), Some(test_support::MESSAGE_ID));
    assert_eq!(get("apns-priority").as_deref(), Some("10"));
    assert_eq!(get("apns-expiration").as_deref(), Some("1700000000"));
    assert_eq!(get("apns-collapse-id").as_deref(), Some("chat-1"));
    assert_eq!(get("content-type").as_deref(), Some("application/json"));

    let h = header_map(PushType::Voip, &Options::default());
    assert_eq!(h["apns-push-type"], "voip");
    assert_eq!(h["apns-topic"], "com.example.app.voip");
    assert!(h.get("apns-collapse-id").is_none());
    let h = header_map(PushType::Background, &Options::default());
    assert_eq!((h["apns-push-type"].to_str().unwrap(), h["apns-priority"].to_str().unwrap()), ("background", "5"));
}

#[test]
fn collapse_keys_that_cannot_be_headers_fail_the_message() {
    let options = Options { collapse_key: Some("bad\nkey".into()), ..Options::default() };
    let input = HeaderInput {
        authorization: reqwest::header::HeaderValue::from_static("bearer x"),
        push_type: PushType::Alert,
        bundle_id: "b",
        message_id: "m",
        options: &options,
        expiration: 0,
    };
    assert!(payload::headers(&input).unwrap_err().starts_with("APNs apns-collapse-id"));
}

fn config_json(private_key: &str) -> Value {
    json!({"team_id": "TEAM123456", "key_id": "KEY1234567", "private_key": private_key, "bundle_id": "com.example"})
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
}

#[test]
fn provider_tokens_are_es256_with_kid_and_iss() {
    let cfg = config_json(EC_PRIVATE_PEM);
    let jwt = sign(&ApnsConfig::parse(&cfg).unwrap(), 1_700_000_000).unwrap();
    let header = decode_header(&jwt).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref(), header.typ.as_deref()),
        (Algorithm::ES256, Some("KEY1234567"), None)
    );
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let key = DecodingKey::from_ec_pem(EC_PUBLIC_PEM.as_bytes()).unwrap();
    let claims = decode::<Claims>(&jwt, &key, &validation).unwrap().claims;
    assert_eq!((claims.iss.as_str(), claims.iat), ("TEAM123456", 1_700_000_000));
}

#[test]
fn provider_tokens_are_cached_and_refreshed_after_40_minutes() {
    let cfg = config_json(EC_PRIVATE_PEM);
    let config = ApnsConfig::parse(&cfg).unwrap();
    let tokens = ProviderTokens::default();
    let t0 = 1_700_000_000;
    let first = tokens.authorization(&config, t0).unwrap();
    assert_eq!(tokens.authorization(&config, t0 + TOKEN_REFRESH_SECS - 1).unwrap(), first);
    let second = tokens.authorization(&config, t0 + TOKEN_REFRESH_SECS).unwrap();
    assert_ne!(second, first);
    // A refused token is dropped; a token that was already replaced is not.
    tokens.invalidate(&config, &first);
    assert_eq!(tokens.authorization(&config, t0 + TOKEN_REFRESH_SECS).unwrap(), second);
    tokens.invalidate(&config, &second);
    assert_ne!(tokens.authorization(&config, t0 + TOKEN_REFRESH_SECS).unwrap(), second);
    assert!(is_fresh(t0, t0) && !is_fresh(t0, t0 - 1), "a clock that went backwards forces a new token");
}

#[test]
fn a_replaced_key_gets_a_new_token() {
    let tokens = ProviderTokens::default();
    let (old, new) = (config_json(EC_PRIVATE_PEM), config_json(&test_support::generated_p8()));
    let first = tokens.authorization(&ApnsConfig::parse(&old).unwrap(), 100).unwrap();
    let second = tokens.authorization(&ApnsConfig::parse(&new).unwrap(), 101).unwrap();
    assert_ne!(first, second);
    assert!(tokens.authorization(&ApnsConfig::parse(&config_json("not a key")).unwrap(), 102).is_err());
}

#[test]
fn host_key_is_the_apns_host_for_the_environment() {
    let provider = ApnsProvider::new(&ProviderSettings::default()).unwrap();
    let channel = test_support::channel(ChannelType::Apns, config_json(EC_PRIVATE_PEM));
    let mut job = test_support::job(
        channel,
        test_support::DEVICE_TOKEN,
        SubscriptionKind::Standard,
        alert("a", "b"),
        Options::default(),
    );
    assert_eq!(provider.host_key(&job), "api.push.apple.com:443");
    job.target.environment = Environment::Sandbox;
    assert_eq!(provider.host_key(&job), "api.sandbox.push.apple.com:443");
    let mut cfg = config_json(EC_PRIVATE_PEM);
    cfg["endpoint"] = json!("http://127.0.0.1:4444");
    job.channel = test_support::channel(ChannelType::Apns, cfg);
    assert_eq!(provider.host_key(&job), "127.0.0.1:4444");
}

#[tokio::test]
async fn broken_config_and_tokens_fail_before_any_request() {
    let provider = ApnsProvider::new(&ProviderSettings::default()).unwrap();
    let send = |config: Value, token: &str| {
        let channel = test_support::channel(ChannelType::Apns, config);
        test_support::job(channel, token, SubscriptionKind::Standard, alert("a", "b"), Options::default())
    };
    let outcome = provider.send(&send(json!({"team_id": "T"}), test_support::DEVICE_TOKEN)).await;
    assert!(matches!(outcome, Outcome::ChannelError { status: None, ref reason } if reason.contains("key_id")));
    let outcome = provider.send(&send(config_json("garbage"), test_support::DEVICE_TOKEN)).await;
    assert!(matches!(outcome, Outcome::ChannelError { status: None, ref reason } if reason.contains("private_key")));
    let outcome = provider.send(&send(config_json(EC_PRIVATE_PEM), "../../x")).await;
    assert!(matches!(outcome, Outcome::Failed { status: None, .. }));
}
