//! Web Push (RFC 8030) building blocks: payload encryption and VAPID.

pub mod crypto;
pub mod payload;
pub mod provider;
pub mod vapid;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
