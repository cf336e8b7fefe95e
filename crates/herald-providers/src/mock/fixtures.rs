//! Test credentials and channel configs that match the mocks' defaults. The keys protect
//! nothing; they exist so tests and benchmarks need no files of their own.

use serde_json::{Value, json};

use super::MockFcm;

/// P-256 private key (PKCS#8 PEM, the `.p8` format Apple issues).
pub const EC_PRIVATE_PEM: &str = include_str!("../../tests-fixtures/ec_private.pem");
/// The public half of [`EC_PRIVATE_PEM`] (SPKI PEM).
pub const EC_PUBLIC_PEM: &str = include_str!("../../tests-fixtures/ec_public.pem");
/// RSA private key (PKCS#8 PEM, as in a Google service-account file).
pub const RSA_PRIVATE_PEM: &str = include_str!("../../tests-fixtures/rsa_private.pem");
/// The public half of [`RSA_PRIVATE_PEM`] (SPKI PEM).
pub const RSA_PUBLIC_PEM: &str = include_str!("../../tests-fixtures/rsa_public.pem");

/// Apple team id of the test credentials (10 characters, like Apple's).
pub const TEST_TEAM_ID: &str = "TEAM123456";
/// Apple key id of the test credentials.
pub const TEST_KEY_ID: &str = "KEY1234567";
/// App bundle id the APNs mock expects by default.
pub const TEST_BUNDLE_ID: &str = "com.example.herald";
/// Firebase project id the FCM mock expects by default.
pub const TEST_PROJECT_ID: &str = "herald-test";
/// Service-account email the FCM mock expects by default.
pub const TEST_CLIENT_EMAIL: &str = "herald@herald-test.iam.gserviceaccount.com";
/// A well-formed APNs device token (64 hex digits).
pub const TEST_DEVICE_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// An APNs channel config signed with the test key, sending to `endpoint` (a mock's
/// [`base_url`](super::MockApns::base_url)).
pub fn apns_channel_config(endpoint: &str) -> Value {
    json!({
        "team_id": TEST_TEAM_ID,
        "key_id": TEST_KEY_ID,
        "private_key": EC_PRIVATE_PEM,
        "bundle_id": TEST_BUNDLE_ID,
        "environment": "production",
        "endpoint": endpoint,
    })
}

/// An FCM channel config whose service account uses the test key and `mock`'s token endpoint.
pub fn fcm_channel_config(mock: &MockFcm) -> Value {
    json!({
        "service_account": {
            "type": "service_account",
            "project_id": TEST_PROJECT_ID,
            "client_email": TEST_CLIENT_EMAIL,
            "private_key": RSA_PRIVATE_PEM,
            "token_uri": mock.token_uri(),
        },
        "endpoint": mock.base_url(),
    })
}
