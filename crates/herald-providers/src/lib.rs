//! Herald's outbound push providers.
//!
//! This crate holds the pieces of the delivery engine that talk to the outside
//! world and must be right independently of the server (DESIGN.md section 5):
//!
//! - [`webpush::crypto`]: RFC 8291 `aes128gcm` message encryption.
//! - [`webpush::vapid`]: RFC 8292 VAPID authorization headers, cached per audience.
//! - [`ssrf`]: the outbound guard that decides which URLs and addresses Herald
//!   may connect to, since push endpoints and webhook URLs are attacker-supplied.
//!
//! With the `testing` cargo feature, `webpush::testing` additionally exposes an
//! independent RFC 8291 decryptor for integration tests.

#![forbid(unsafe_code)]

pub mod ssrf;
pub mod webpush;
