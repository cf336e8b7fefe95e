//! FCM message, error mapping, assertion and configuration tests; the end-to-end tests against
//! the mock live in `e2e_tests.rs`.

use std::time::Duration;

use herald_core::delivery::{Content, Options, Outcome, Provider, Urgency};
use herald_core::model::{ChannelType, SubscriptionKind};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

use super::config::FcmConfig;
use super::payload::{self, Delivery};
use super::response::{self, FcmError};
use super::token::{AssertionClaims, SCOPE, assertion, token_refused};
use super::*;
use crate::test_support::{self, RSA_PRIVATE_PEM, RSA_PUBLIC_PEM, alert};

fn body_for(content: &Content, options: &Options) -> Value {
    let message = payload::content_message(content, options).unwrap();
    let delivery = Delivery {
        token: "tok",
        options,
        ttl_secs: 300,
        expires_at_secs: 1_700_000_300,
        visible: message.get("notification").is_some(),
    };
    payload::request_body(&delivery, &message)
}

#[test]
fn message_maps_content_and_delivery_options() {
    let content = Content {
        image: Some("https://img.example/a.png".into()),
        url: Some("https://app.example/x".into()),
        data: Some(json!({"n": 1, "s": "text", "b": true, "o": {"k": [1]}, "nothing": null})),
        sound: Some("default".into()),
        badge: Some(json!(2)),
        tag: Some("chat".into()),
        ..alert("Hi", "There")
    };
    let options = Options { urgency: Urgency::High, collapse_key: Some("c1".into()), ..Options::default() };
    assert_eq!(
        body_for(&content, &options),
        json!({"message": {
            "token": "tok",
            "notification": {"title": "Hi", "body": "There", "image": "https://img.example/a.png"},
            "data": {"n": "1", "s": "text", "b": "true", "o": "{\"k\":[1]}", "url": "https://app.example/x"},
            "android": {"priority": "HIGH", "ttl": "300s", "collapse_key": "c1",
                        "notification": {"sound": "default", "tag": "chat"}},
            "apns": {"headers": {"apns-priority": "10", "apns-expiration": "1700000300", "apns-collapse-id": "c1"},
                     "payload": {"aps": {"sound": "default", "badge": 2}}},
            "webpush": {"headers": {"TTL": "300", "Urgency": "high"}},
        }})
    );
}

#[test]
fn data_only_messages_have_no_notification_and_low_apns_priority() {
    let content = Content { data: Some(json!({"sync": "1"})), ..Content::default() };
    let options = Options { priority: Some("high".into()), ..Options::default() };
    let body = body_for(&content, &options);
    assert!(body["message"].get("notification").is_none());
    assert_eq!(body["message"]["android"]["priority"], "HIGH");
    assert_eq!(body["message"]["apns"]["headers"]["apns-priority"], "5");
    let normal = body_for(&alert("a", "b"), &Options::default());
    assert_eq!(normal["message"]["android"]["priority"], "NORMAL");
    assert_eq!(normal["message"]["webpush"]["headers"]["Urgency"], "normal");
}

#[test]
fn overrides_merge_over_everything_herald_built() {
    let options = Options {
        urgency: Urgency::High,
        fcm: Some(json!({
            "android": {"priority": "NORMAL", "notification": {"channel_id": "msgs"}},
            "data": {"extra": "1"},
            "webpush": null,
        })),
        ..Options::default()
    };
    let message = &body_for(&alert("a", "b"), &options)["message"];
    assert_eq!(
        message["android"],
        json!({"priority": "NORMAL", "ttl": "300s", "notification": {"channel_id": "msgs"}})
    );
    assert_eq!(message["data"], json!({"extra": "1"}));
    assert!(message.get("webpush").is_none());
    let bad = Options { fcm: Some(json!("x")), ..Options::default() };
    assert!(payload::content_message(&alert("a", "b"), &bad).unwrap_err().contains("FCM"));
}

#[test]
fn payload_limit_is_4096() {
    let provider = FcmProvider::new(&ProviderSettings::default()).unwrap();
    let overhead = payload::content_message(&alert("", ""), &Options::default()).map(|m| m.to_string().len()).unwrap();
    let content = |len: usize| alert("", &"x".repeat(len - overhead));
    let check = |len| provider.check_payload(&content(len), &Options::default(), SubscriptionKind::Standard);
    assert_eq!(check(4096), Ok(()));
    assert_eq!(check(4097), Err("FCM payload is 4097 bytes; the limit is 4096".to_owned()));
}

fn error(status: Option<&str>, code: Option<&str>) -> FcmError {
    FcmError { status: status.map(Into::into), error_code: code.map(Into::into), message: None }
}

#[test]
fn error_table() {
    let table = [
        (404, Some("NOT_FOUND"), Some("UNREGISTERED"), "gone"),
        (400, Some("INVALID_ARGUMENT"), Some("UNREGISTERED"), "gone"),
        (404, Some("NOT_FOUND"), None, "gone"),
        (403, Some("PERMISSION_DENIED"), Some("SENDER_ID_MISMATCH"), "channel"),
        (401, Some("UNAUTHENTICATED"), Some("THIRD_PARTY_AUTH_ERROR"), "channel"),
        (401, Some("UNAUTHENTICATED"), None, "channel"),
        (403, Some("PERMISSION_DENIED"), None, "channel"),
        (429, Some("RESOURCE_EXHAUSTED"), Some("QUOTA_EXCEEDED"), "retry"),
        (503, Some("UNAVAILABLE"), Some("UNAVAILABLE"), "retry"),
        (500, Some("INTERNAL"), Some("INTERNAL"), "retry"),
        (502, None, None, "retry"),
        (400, Some("INVALID_ARGUMENT"), Some("INVALID_ARGUMENT"), "failed"),
        (400, None, None, "failed"),
    ];
    for (status, grpc, code, expected) in table {
        let kind = match response::classify(status, &error(grpc, code), None) {
            Outcome::Gone { .. } => "gone",
            Outcome::ChannelError { .. } => "channel",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Delivered { .. } => "delivered",
        };
        assert_eq!(kind, expected, "{status} {grpc:?} {code:?}");
    }
}

#[test]
fn error_bodies_are_parsed_and_described() {
    let body = json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest"},
                    {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
    let parsed = response::parse_error(body.to_string().as_bytes());
    assert_eq!(
        parsed,
        FcmError {
            status: Some("NOT_FOUND".into()),
            error_code: Some("UNREGISTERED".into()),
            message: Some("Requested entity was not found.".into()),
        }
    );
    assert_eq!(
        response::classify(404, &parsed, None),
        Outcome::Gone { status: 404, reason: "FCM 404 UNREGISTERED: Requested entity was not found.".into() }
    );
    assert_eq!(response::parse_error(b"<html>"), FcmError::default());
    let retry = response::classify(429, &FcmError::default(), Some(Duration::from_secs(9)));
    assert_eq!(
        retry,
        Outcome::Retry { status: Some(429), reason: "FCM 429".into(), retry_after: Some(Duration::from_secs(9)) }
    );
    assert_eq!(
        response::message_name(br#"{"name":"projects/p/messages/7"}"#).as_deref(),
        Some("projects/p/messages/7")
    );
}

#[test]
fn token_endpoint_refusals_blame_credentials_unless_transient() {
    let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    assert_eq!(
        token_refused(400, body, None),
        Outcome::ChannelError {
            status: Some(400),
            reason: "FCM token endpoint 400 invalid_grant: Invalid JWT Signature.".into()
        }
    );
    assert!(matches!(token_refused(503, b"", None), Outcome::Retry { status: Some(503), .. }));
    assert!(matches!(token_refused(429, b"", None), Outcome::Retry { .. }));
    assert!(matches!(token_refused(401, b"", None), Outcome::ChannelError { .. }));
}

fn service_account(private_key: &str) -> Value {
    json!({"service_account": {"project_id": "p", "client_email": "svc@p.iam.gserviceaccount.com",
        "private_key": private_key, "token_uri": "https://oauth2.example/token"}})
}

#[test]
fn assertions_are_rs256_with_scope_audience_and_an_hour_of_life() {
    let cfg = service_account(RSA_PRIVATE_PEM);
    let jwt = assertion(&FcmConfig::parse(&cfg).unwrap(), 1_700_000_000).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://oauth2.example/token"]);
    validation.validate_exp = false;
    let key = DecodingKey::from_rsa_pem(RSA_PUBLIC_PEM.as_bytes()).unwrap();
    let claims = decode::<AssertionClaims>(&jwt, &key, &validation).unwrap().claims;
    assert_eq!(claims.iss, "svc@p.iam.gserviceaccount.com");
    assert_eq!(claims.scope, SCOPE);
    assert_eq!((claims.iat, claims.exp), (1_700_000_000, 1_700_003_600));
    let bad = service_account("nope");
    assert!(assertion(&FcmConfig::parse(&bad).unwrap(), 0).unwrap_err().contains("private_key"));
}

#[test]
fn host_key_is_the_fcm_host() {
    let provider = FcmProvider::new(&ProviderSettings::default()).unwrap();
    let channel = test_support::channel(ChannelType::Fcm, service_account(RSA_PRIVATE_PEM));
    let mut job = test_support::job(channel, "t", SubscriptionKind::Standard, alert("a", "b"), Options::default());
    assert_eq!(provider.host_key(&job), "fcm.googleapis.com:443");
    let mut cfg = service_account(RSA_PRIVATE_PEM);
    cfg["endpoint"] = json!("http://127.0.0.1:5555/");
    job.channel = test_support::channel(ChannelType::Fcm, cfg);
    assert_eq!(provider.host_key(&job), "127.0.0.1:5555");
}

#[tokio::test]
async fn broken_credentials_are_channel_errors_before_any_request() {
    let provider = FcmProvider::new(&ProviderSettings::default()).unwrap();
    for config in [json!({}), service_account("not a key")] {
        let channel = test_support::channel(ChannelType::Fcm, config);
        let job = test_support::job(channel, "t", SubscriptionKind::Standard, alert("a", "b"), Options::default());
        assert!(matches!(provider.send(&job).await, Outcome::ChannelError { status: None, .. }));
    }
}
