//! `FcmProvider::send` against [`MockFcm`], which verifies the OAuth grant and the bearer token.

use std::sync::Arc;
use std::time::Duration;

use herald_core::delivery::{Job, Options, Outcome, Provider};
use herald_core::model::{ChannelType, SubscriptionKind};
use serde_json::json;

use super::FcmProvider;
use crate::http::ProviderSettings;
use crate::mock::{MockFcm, MockFcmConfig, MockResponse, fixtures};
use crate::test_support::{self, alert};

const DEVICE: &str = "fcm-device-token:APA91b";

async fn setup(config: MockFcmConfig) -> (FcmProvider, MockFcm) {
    let mock = MockFcm::start(config).await.unwrap();
    (FcmProvider::new(&ProviderSettings::default()).unwrap(), mock)
}

fn job_for(mock: &MockFcm) -> Job {
    let channel = test_support::channel(ChannelType::Fcm, fixtures::fcm_channel_config(mock));
    test_support::job(channel, DEVICE, SubscriptionKind::Standard, alert("Hello", "World"), Options::default())
}

#[tokio::test]
async fn a_message_is_sent_with_a_granted_token() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    let outcome = provider.send(&job_for(&mock)).await;
    let expected = Some("projects/herald-test/messages/1".to_owned());
    assert_eq!(outcome, Outcome::Delivered { status: 200, provider_message_id: expected }, "{:?}", mock.rejected());
    assert_eq!(mock.tokens_issued(), 1);
    let request = &mock.requests()[0];
    assert_eq!(request.path, "/v1/projects/herald-test/messages:send");
    assert_eq!(request.header("authorization"), Some("Bearer tok-1"));
    let message = &request.json().unwrap()["message"];
    assert_eq!(message["token"], DEVICE);
    assert_eq!(message["notification"], json!({"title": "Hello", "body": "World"}));
}

#[tokio::test]
async fn the_access_token_is_reused_until_near_expiry() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    for _ in 0..3 {
        assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::Delivered { .. }));
    }
    assert_eq!(mock.tokens_issued(), 1);

    // Tokens living under the one-minute refresh margin are never reused.
    let (provider, mock) = setup(MockFcmConfig::with_test_key().token_lifetime(Duration::from_secs(30))).await;
    for _ in 0..2 {
        assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::Delivered { .. }));
    }
    assert_eq!(mock.tokens_issued(), 2);
}

#[tokio::test]
async fn concurrent_sends_share_one_token_fetch() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    let provider = Arc::new(provider);
    let job = job_for(&mock);
    let sends = (0..16).map(|_| {
        let (provider, job) = (provider.clone(), job.clone());
        tokio::spawn(async move { provider.send(&job).await })
    });
    for send in sends {
        assert!(matches!(send.await.unwrap(), Outcome::Delivered { .. }));
    }
    assert_eq!(mock.tokens_issued(), 1);
    assert_eq!(mock.request_count(), 16);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_within_the_same_send() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::Delivered { .. }));
    mock.revoke_tokens();
    let outcome = provider.send(&job_for(&mock)).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    assert_eq!(mock.tokens_issued(), 2);
    let rejected = mock.rejected();
    assert_eq!(rejected.len(), 1);
    assert_eq!((rejected[0].status, rejected[0].header("authorization")), (401, Some("Bearer tok-1")));
    assert_eq!(mock.requests().last().unwrap().header("authorization"), Some("Bearer tok-2"));
}

#[tokio::test]
async fn a_persistent_401_is_a_channel_error_after_one_refresh() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    mock.set_responder(|_| MockResponse::fcm_error(401, "UNAUTHENTICATED", None));
    let outcome = provider.send(&job_for(&mock)).await;
    assert!(matches!(outcome, Outcome::ChannelError { status: Some(401), .. }), "{outcome:?}");
    assert_eq!((mock.tokens_issued(), mock.request_count()), (2, 2));
}

#[tokio::test]
async fn answers_map_to_outcomes() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    mock.push_response(MockResponse::fcm_error(404, "NOT_FOUND", Some("UNREGISTERED")));
    let outcome = provider.send(&job_for(&mock)).await;
    assert_eq!(outcome, Outcome::Gone { status: 404, reason: "FCM 404 UNREGISTERED: mock NOT_FOUND".into() });

    mock.push_response(MockResponse::fcm_error(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH")));
    assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::ChannelError { status: Some(403), .. }));

    let quota =
        MockResponse::fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED")).with_header("retry-after", "12");
    mock.push_response(quota);
    let outcome = provider.send(&job_for(&mock)).await;
    assert!(matches!(outcome, Outcome::Retry { status: Some(429), retry_after: Some(d), .. } if d.as_secs() == 12));

    mock.push_response(MockResponse::fcm_error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT")));
    assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::Failed { status: Some(400), .. }));
}

#[tokio::test]
async fn token_endpoint_failures_map_to_channel_errors_or_retries() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    mock.push_token_response(MockResponse::json(400, &json!({"error": "invalid_grant", "error_description": "nope"})));
    let outcome = provider.send(&job_for(&mock)).await;
    assert!(
        matches!(outcome, Outcome::ChannelError { status: Some(400), ref reason, .. } if reason.contains("invalid_grant"))
    );
    mock.push_token_response(MockResponse::new(503));
    assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::Retry { status: Some(503), .. }));
    assert_eq!(mock.request_count(), 0);
    assert!(matches!(provider.send(&job_for(&mock)).await, Outcome::Delivered { .. }));
}

#[tokio::test]
async fn an_assertion_signed_with_the_wrong_key_is_refused() {
    let (provider, mock) = setup(MockFcmConfig::with_test_key()).await;
    let mut config = fixtures::fcm_channel_config(&mock);
    config["service_account"]["private_key"] = json!(test_support::OTHER_RSA_PRIVATE_PEM);
    let channel = test_support::channel(ChannelType::Fcm, config);
    let job = test_support::job(channel, DEVICE, SubscriptionKind::Standard, alert("a", "b"), Options::default());
    let outcome = provider.send(&job).await;
    assert!(matches!(outcome, Outcome::ChannelError { status: Some(400), .. }), "{outcome:?}");
    assert_eq!((mock.tokens_issued(), mock.rejected().len()), (0, 1));
}
