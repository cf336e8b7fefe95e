//! Tokens that name one row and prove Herald issued them, verifiable without a lookup:
//! receipt tokens (one per delivery, carried in every push so the service worker or app can
//! report `displayed` / `clicked` / `dismissed`) and renewal tokens (one per subscription,
//! handed to the SDK so its service worker can replace that subscription on
//! `pushsubscriptionchange`, when no user token is at hand).
//!
//! Shape: `<prefix>.<base64url(id, 8 bytes big-endian)>.<base64url(HMAC-SHA256(purpose ‖ id))[..16]>`
//! under a per-deployment secret (stored in the database so every node signs alike). The purpose
//! is part of the MAC, so a receipt token is never a renewal token or the other way round, and a
//! token for one delivery is useless for any other.

use aws_lc_rs::hmac;

use crate::keys::ct_eq;
use crate::validate::{b64url, to_b64url};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reports what happened to one delivery.
    Receipt,
    /// Replaces one subscription.
    Renewal,
}

impl Purpose {
    fn prefix(self) -> &'static str {
        match self {
            Purpose::Receipt => "hr1",
            Purpose::Renewal => "hn1",
        }
    }
}

/// Name of the deployment secret the keys derive from.
pub const SECRET_NAME: &str = "signed_tokens";

/// Signs and verifies [`Purpose`] tokens.
#[derive(Clone)]
pub struct TokenKey(hmac::Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Truncated MAC length: 128 bits is ample for tokens that name a single row.
const MAC_LEN: usize = 16;

impl TokenKey {
    /// A key from the deployment secret.
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn mac(&self, purpose: Purpose, id: i64) -> [u8; MAC_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(purpose.prefix().as_bytes());
        ctx.update(&id.to_be_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        out
    }

    /// The token naming `id` for `purpose`.
    pub fn sign(&self, purpose: Purpose, id: i64) -> String {
        format!("{}.{}.{}", purpose.prefix(), to_b64url(&id.to_be_bytes()), to_b64url(&self.mac(purpose, id)))
    }

    /// The id a genuine token for `purpose` names; `None` for anything else.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<i64> {
        if token.len() > 64 {
            return None;
        }
        let mut parts = token.split('.');
        let (prefix, id, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || prefix != purpose.prefix() {
            return None;
        }
        let id = i64::from_be_bytes(b64url(id)?.try_into().ok()?);
        let mac = b64url(mac)?;
        ct_eq(&mac, &self.mac(purpose, id)).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_one_row_for_one_purpose() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let t = key.sign(Purpose::Receipt, 42);
        assert_eq!(key.verify(Purpose::Receipt, &t), Some(42));
        assert_eq!(key.verify(Purpose::Renewal, &t), None, "a receipt is not a renewal");
        let other = TokenKey::new(b"another secret, another deployment");
        assert_eq!(other.verify(Purpose::Receipt, &t), None);
        // Another id with this token's MAC, a flipped MAC bit, garbage: all refused.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], to_b64url(&43i64.to_be_bytes()), parts[2]);
        assert_eq!(key.verify(Purpose::Receipt, &forged), None);
        let mut mac = b64url(parts[2]).unwrap();
        mac[0] ^= 1;
        assert_eq!(key.verify(Purpose::Receipt, &format!("{}.{}.{}", parts[0], parts[1], to_b64url(&mac))), None);
        for junk in ["", "hr1", "hr1..", "hr1.AAAA.AAAA", &"x".repeat(100), "hr1.AAAAAAAAAAA.AAAA.extra"] {
            assert_eq!(key.verify(Purpose::Receipt, junk), None, "{junk}");
        }
    }
}
