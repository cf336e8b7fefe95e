//! `ApnsProvider::send` against [`MockApns`], which verifies the provider token and headers.

use std::time::Duration;

use herald_core::delivery::{Content, Job, Options, Outcome, Provider, Urgency};
use herald_core::model::{ChannelType, SubscriptionKind};
use serde_json::json;

use super::ApnsProvider;
use crate::http::ProviderSettings;
use crate::mock::{MockApns, MockApnsConfig, MockResponse, fixtures};
use crate::test_support::{self, DEVICE_TOKEN, MESSAGE_ID, alert};

async fn setup() -> (ApnsProvider, MockApns) {
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    (ApnsProvider::new(&ProviderSettings::default()).unwrap(), mock)
}

fn job_for(mock: &MockApns, kind: SubscriptionKind, content: Content, options: Options) -> Job {
    let channel = test_support::channel(ChannelType::Apns, fixtures::apns_channel_config(mock.base_url()));
    test_support::job(channel, DEVICE_TOKEN, kind, content, options)
}

#[tokio::test]
async fn an_alert_is_delivered_over_http2_with_a_verified_token() {
    let (provider, mock) = setup().await;
    let options = Options { urgency: Urgency::High, collapse_key: Some("c1".into()), ..Options::default() };
    let job = job_for(&mock, SubscriptionKind::Standard, alert("Hello", "World"), options);
    let outcome = provider.send(&job).await;
    assert_eq!(outcome, Outcome::Delivered { status: 200, provider_message_id: Some(MESSAGE_ID.into()) });

    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "rejected: {:?}", mock.rejected());
    let request = &requests[0];
    assert_eq!(request.version, "HTTP/2.0");
    assert_eq!(request.path, format!("/3/device/{DEVICE_TOKEN}"));
    assert_eq!(request.header("apns-topic"), Some(fixtures::TEST_BUNDLE_ID));
    assert_eq!(request.header("apns-push-type"), Some("alert"));
    assert_eq!(request.header("apns-priority"), Some("10"));
    assert_eq!(request.header("apns-collapse-id"), Some("c1"));
    assert_eq!(request.header("apns-expiration"), Some((job.expires_at / 1000).to_string().as_str()));
    assert_eq!(request.json(), Some(json!({"aps": {"alert": {"title": "Hello", "body": "World"}}})));
}

#[tokio::test]
async fn voip_pushes_use_the_voip_topic_and_type() {
    let (provider, mock) = setup().await;
    let content = Content { data: Some(json!({"call_id": "42"})), ..Content::default() };
    let outcome = provider.send(&job_for(&mock, SubscriptionKind::Voip, content, Options::default())).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?} {:?}", mock.rejected());
    let request = &mock.requests()[0];
    assert_eq!(request.header("apns-topic"), Some("com.example.herald.voip"));
    assert_eq!(request.header("apns-push-type"), Some("voip"));
    assert_eq!(request.header("apns-priority"), Some("10"));
}

#[tokio::test]
async fn one_provider_token_serves_many_requests() {
    let (provider, mock) = setup().await;
    for _ in 0..3 {
        let job = job_for(&mock, SubscriptionKind::Standard, alert("a", "b"), Options::default());
        assert!(matches!(provider.send(&job).await, Outcome::Delivered { .. }));
    }
    let auth: Vec<_> = mock.requests().iter().map(|r| r.header("authorization").unwrap().to_owned()).collect();
    assert_eq!(auth.len(), 3);
    assert!(auth.iter().all(|a| a == &auth[0]));
}

#[tokio::test]
async fn a_token_from_the_wrong_key_is_a_channel_error() {
    let (provider, mock) = setup().await;
    let mut config = fixtures::apns_channel_config(mock.base_url());
    config["private_key"] = json!(test_support::generated_p8());
    let channel = test_support::channel(ChannelType::Apns, config);
    let job = test_support::job(channel, DEVICE_TOKEN, SubscriptionKind::Standard, alert("a", "b"), Options::default());
    let outcome = provider.send(&job).await;
    assert_eq!(outcome, Outcome::ChannelError { status: Some(403), reason: "APNs 403 InvalidProviderToken".into() });
    assert_eq!(mock.request_count(), 0);
    assert_eq!(mock.rejected().len(), 1);
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_the_send_retried_once() {
    let (provider, mock) = setup().await;
    mock.push_response(MockResponse::apns_error(403, "ExpiredProviderToken"));
    let job = job_for(&mock, SubscriptionKind::Standard, alert("a", "b"), Options::default());
    assert!(matches!(provider.send(&job).await, Outcome::Delivered { .. }));
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_ne!(requests[0].header("authorization"), requests[1].header("authorization"));
    assert_eq!(requests[0].header("apns-id"), requests[1].header("apns-id"), "same apns-id on the repeat");

    mock.set_responder(|_| MockResponse::apns_error(403, "ExpiredProviderToken"));
    let outcome = provider.send(&job).await;
    assert!(matches!(outcome, Outcome::Retry { status: Some(403), .. }), "{outcome:?}");
}

#[tokio::test]
async fn answers_map_to_outcomes() {
    let (provider, mock) = setup().await;
    let job = job_for(&mock, SubscriptionKind::Standard, alert("a", "b"), Options::default());
    let cases = [
        (MockResponse::apns_error(410, "Unregistered"), "gone"),
        (MockResponse::apns_error(400, "BadDeviceToken"), "gone"),
        (MockResponse::apns_error(400, "DeviceTokenNotForTopic"), "channel"),
        (MockResponse::apns_error(413, "PayloadTooLarge"), "failed"),
        (MockResponse::apns_error(503, "ServiceUnavailable"), "retry"),
    ];
    for (answer, expected) in cases {
        mock.push_response(answer.clone());
        let outcome = provider.send(&job).await;
        let kind = match outcome {
            Outcome::Gone { .. } => "gone",
            Outcome::ChannelError { .. } => "channel",
            Outcome::Failed { .. } => "failed",
            Outcome::Retry { .. } => "retry",
            Outcome::Delivered { .. } => "delivered",
        };
        assert_eq!(kind, expected, "{answer:?}");
    }
    mock.push_response(MockResponse::apns_error(429, "TooManyRequests").with_header("retry-after", "30"));
    let outcome = provider.send(&job).await;
    assert_eq!(
        outcome,
        Outcome::Retry {
            status: Some(429),
            reason: "APNs 429 TooManyRequests".into(),
            retry_after: Some(Duration::from_secs(30))
        }
    );
}

#[tokio::test]
async fn the_mock_accepts_the_p8_as_verification_key() {
    let config = MockApnsConfig::new(fixtures::EC_PRIVATE_PEM, fixtures::TEST_TEAM_ID, fixtures::TEST_KEY_ID);
    let mock = MockApns::start(config).await.unwrap();
    let provider = ApnsProvider::new(&ProviderSettings::default()).unwrap();
    let job = job_for(&mock, SubscriptionKind::Standard, Content::default(), Options::default());
    assert!(matches!(provider.send(&job).await, Outcome::Delivered { .. }), "{:?}", mock.rejected());
    assert_eq!(mock.requests()[0].header("apns-push-type"), Some("background"));
}

#[tokio::test]
async fn unreachable_hosts_are_retried() {
    let provider = ApnsProvider::new(&ProviderSettings::default()).unwrap();
    let endpoint = {
        // A port that was just free: nothing listens there any more.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let channel = test_support::channel(ChannelType::Apns, fixtures::apns_channel_config(&endpoint));
    let job = test_support::job(channel, DEVICE_TOKEN, SubscriptionKind::Standard, alert("a", "b"), Options::default());
    let outcome = provider.send(&job).await;
    assert!(
        matches!(outcome, Outcome::Retry { status: None, ref reason, .. } if reason.starts_with("APNs: connection failed")),
        "{outcome:?}"
    );
}
