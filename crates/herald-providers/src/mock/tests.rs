//! The mocks refuse what the real services refuse.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Client;
use serde_json::json;

use super::fixtures::{self, EC_PRIVATE_PEM, TEST_DEVICE_TOKEN};
use super::{MockApns, MockApnsConfig, MockFcm, MockFcmConfig, MockResponse};

fn h2c() -> Client {
    Client::builder().http2_prior_knowledge().build().unwrap()
}

fn provider_token(kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let key = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap();
    encode(&header, &json!({"iss": fixtures::TEST_TEAM_ID, "iat": iat}), &key).unwrap()
}

/// Posts to the APNs mock with valid headers, then `tweak`s them.
async fn apns_post(mock: &MockApns, tweak: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut headers = vec![
        ("authorization".to_owned(), format!("bearer {}", provider_token(fixtures::TEST_KEY_ID))),
        ("apns-topic".to_owned(), fixtures::TEST_BUNDLE_ID.to_owned()),
        ("apns-push-type".to_owned(), "alert".to_owned()),
        ("apns-id".to_owned(), "123E4567-E89B-12D3-A456-426614174000".to_owned()),
        ("apns-priority".to_owned(), "10".to_owned()),
    ];
    for (name, value) in tweak {
        headers.retain(|(n, _)| n != name);
        if !value.is_empty() {
            headers.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let mut request = h2c().post(format!("{}/3/device/{TEST_DEVICE_TOKEN}", mock.base_url())).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn mock_apns_checks_tokens_headers_and_payloads() {
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let ok = r#"{"aps":{"alert":"hi"}}"#;
    assert_eq!(apns_post(&mock, &[], ok).await.0, 200);
    let refused = |reason: &str| serde_json::to_string(&json!({"reason": reason})).unwrap();
    let bad_kid = format!("bearer {}", provider_token("OTHERKEY00"));
    let long_collapse_id = "c".repeat(65);
    // (header changes, body, expected status, expected reason)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![("authorization", "")], ok, 403, "MissingProviderToken"),
        (vec![("authorization", bad_kid.as_str())], ok, 403, "InvalidProviderToken"),
        (vec![("apns-topic", "")], ok, 400, "MissingTopic"),
        (vec![("apns-topic", "com.other.app")], ok, 400, "DeviceTokenNotForTopic"),
        (vec![("apns-push-type", "voip")], ok, 400, "DeviceTokenNotForTopic"),
        (vec![("apns-push-type", "")], ok, 400, "InvalidPushType"),
        (vec![("apns-id", "not-a-uuid")], ok, 400, "BadMessageId"),
        (vec![("apns-push-type", "background")], ok, 400, "BadPriority"),
        (vec![("apns-collapse-id", long_collapse_id.as_str())], ok, 400, "BadCollapseId"),
        (vec![], "", 400, "PayloadEmpty"),
        (vec![], "[1]", 400, "BadPayload"),
    ];
    for (tweak, body, status, reason) in cases {
        assert_eq!(apns_post(&mock, &tweak, body).await, (status, refused(reason)), "{tweak:?}");
    }
    let big = format!(r#"{{"aps":{{}},"x":"{}"}}"#, "x".repeat(4100));
    assert_eq!(apns_post(&mock, &[], &big).await.0, 413);
    let voip = [("apns-push-type", "voip"), ("apns-topic", "com.example.herald.voip")];
    assert_eq!(apns_post(&mock, &voip, &big).await.0, 200, "voip allows 5120 bytes");
    assert_eq!(mock.request_count(), 2);
    assert_eq!(mock.rejected().len(), 12);
}

#[tokio::test]
async fn mock_apns_speaks_http2_only() {
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let http1 = Client::builder().http1_only().build().unwrap();
    assert!(http1.post(format!("{}/3/device/{TEST_DEVICE_TOKEN}", mock.base_url())).send().await.is_err());
}

#[tokio::test]
async fn mock_apns_scripts_and_records() {
    let mock = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let ok = r#"{"aps":{"alert":"hi"}}"#;
    mock.set_responder(|request| MockResponse::apns_error(410, request.header("apns-push-type").unwrap_or("?")));
    mock.push_response(MockResponse::new(200).with_header("apns-id", "fixed"));
    assert_eq!(apns_post(&mock, &[], ok).await.0, 200);
    assert_eq!(apns_post(&mock, &[], ok).await, (410, r#"{"reason":"alert"}"#.to_owned()));
    mock.clear_responder();
    mock.set_recording(false);
    assert_eq!(apns_post(&mock, &[], ok).await.0, 200);
    let statuses: Vec<u16> = mock.requests().iter().map(|r| r.status).collect();
    assert_eq!((statuses, mock.request_count()), (vec![200, 410], 3));
    mock.clear_requests();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn mock_fcm_checks_grants_and_bearer_tokens() {
    let mock = MockFcm::start(MockFcmConfig::with_test_key()).await.unwrap();
    let client = Client::new();
    let grant = client
        .post(mock.token_uri())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&assertion=x")
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status().as_u16(), 400);
    assert!(grant.text().await.unwrap().contains("unsupported_grant_type"));

    let send = |project: &str, token: &str| {
        client
            .post(format!("{}/v1/projects/{project}/messages:send", mock.base_url()))
            .bearer_auth(token)
            .json(&json!({"message": {"token": "t"}}))
            .send()
    };
    assert_eq!(send(fixtures::TEST_PROJECT_ID, "tok-1").await.unwrap().status().as_u16(), 401);
    assert_eq!(mock.tokens_issued(), 0);
    assert_eq!(mock.rejected().len(), 2);
}
