//! Builders for the jobs the provider tests send.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use herald_core::clock::now_ms;
use herald_core::delivery::{Content, Job, Options, Target};
use herald_core::model::{Channel, ChannelHealth, ChannelType, Environment, SubscriptionKind};
use serde_json::Value;

pub const EC_PRIVATE_PEM: &str = include_str!("../tests-fixtures/ec_private.pem");
pub const EC_PUBLIC_PEM: &str = include_str!("../tests-fixtures/ec_public.pem");
pub const RSA_PRIVATE_PEM: &str = include_str!("../tests-fixtures/rsa_private.pem");
pub const RSA_PUBLIC_PEM: &str = include_str!("../tests-fixtures/rsa_public.pem");
/// An RSA key the mocks do not trust.
#[cfg(feature = "testing")]
pub const OTHER_RSA_PRIVATE_PEM: &str = include_str!("../tests-fixtures/rsa2_private.pem");

pub const DEVICE_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub const MESSAGE_ID: &str = "0e9f6a3c-2b1d-4c5e-8f70-123456789abc";

/// A channel of `channel_type` with `config`.
pub fn channel(channel_type: ChannelType, config: Value) -> Arc<Channel> {
    Arc::new(Channel {
        id: "ch_test".into(),
        account_id: 1,
        name: "test".into(),
        channel_type,
        config,
        is_default: true,
        health: ChannelHealth::Healthy,
        last_error: None,
        last_error_at: None,
        created_at: 0,
        updated_at: 0,
    })
}

/// A first-attempt job to `identifier`, expiring in an hour.
pub fn job(channel: Arc<Channel>, identifier: &str, kind: SubscriptionKind, content: Content, options: Options) -> Job {
    Job {
        delivery_id: 1,
        message_id: MESSAGE_ID.into(),
        notification_id: "ntf_test".into(),
        attempt: 1,
        channel,
        target: Target {
            subscription_id: 1,
            identifier: identifier.into(),
            settings: Value::Null,
            kind,
            environment: Environment::Production,
        },
        content: Arc::new(content),
        options: Arc::new(options),
        expires_at: now_ms() + 3_600_000,
        receipt: None,
    }
}

/// Content with a title and body.
pub fn alert(title: &str, body: &str) -> Content {
    Content { title: Some(title.into()), body: Some(body.into()), ..Content::default() }
}

/// A fresh P-256 key as a `.p8` PEM, for "wrong key" tests.
pub fn generated_p8() -> String {
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let b64 = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}
