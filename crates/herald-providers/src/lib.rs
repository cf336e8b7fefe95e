//! Herald's outbound push providers.
//!
//! This crate holds the pieces of the delivery engine that talk to the outside
//! world and must be right independently of the server (DESIGN.md section 5):
//!
//! - [`webpush::crypto`]: RFC 8291 `aes128gcm` message encryption.
//! - [`webpush::vapid`]: RFC 8292 VAPID authorization headers, cached per audience.
//! - [`apns::ApnsProvider`]: Apple Push Notification service over HTTP/2 with ES256
//!   provider tokens.
//! - [`fcm::FcmProvider`]: Firebase Cloud Messaging HTTP v1 with the service-account
//!   OAuth2 grant.
//! - [`http`]: the pooled HTTP/2 client the APNs and FCM providers share.
//! - [`ssrf`]: the outbound guard that decides which URLs and addresses Herald
//!   may connect to, since push endpoints and webhook URLs are attacker-supplied.
//!
//! With the `testing` cargo feature, `webpush::testing` additionally exposes an
//! independent RFC 8291 decryptor for integration tests, and `mock` local APNs
//! and FCM servers that verify what the providers send.

#![forbid(unsafe_code)]

pub mod apns;
pub mod fcm;
pub mod http;
mod json;
#[cfg(feature = "testing")]
pub mod mock;
pub mod ssrf;
#[cfg(test)]
mod test_support;
pub mod webhook;
pub mod webpush;

pub use apns::ApnsProvider;
pub use fcm::FcmProvider;
pub use http::{HttpClients, ProviderSettings};
