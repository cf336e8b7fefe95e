//! Secrets Herald mints (API keys, session tokens, webhook secrets) and key material it checks
//! (VAPID, APNs .p8, FCM service-account keys).
//!
//! Minted secrets are 256-bit random, shown once and stored only as SHA-256. A presented key is
//! looked up by its short prefix and its hash compared in constant time, so a lookup reveals
//! nothing about stored keys.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::validate::to_b64url;

/// How many characters of a secret (after its kind prefix) are stored in clear for lookup.
const LOOKUP_CHARS: usize = 8;

/// A freshly minted secret: the full value (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct MintedSecret {
    /// The whole secret, e.g. `sk_…`. Returned to the caller once, never stored.
    pub full: String,
    /// The stored lookup prefix, e.g. `sk_AbCdEfGh`.
    pub prefix: String,
    /// SHA-256 of `full`.
    pub hash: Vec<u8>,
}

/// Fills `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf).expect("system random source failed");
    buf
}

/// Mints a 256-bit secret with a visible kind prefix (`sk_`, `pk_`, `ck_`, `ses_`, `whsec_`).
pub fn mint(kind_prefix: &str) -> MintedSecret {
    let full = format!("{kind_prefix}{}", to_b64url(&random_bytes::<32>()));
    MintedSecret { prefix: lookup_prefix(&full).to_string(), hash: hash(&full), full }
}

/// The stored lookup prefix of a presented secret (its kind prefix plus 8 characters).
pub fn lookup_prefix(secret: &str) -> &str {
    let kind_len = secret.find('_').map_or(0, |i| i + 1);
    let end = (kind_len + LOOKUP_CHARS).min(secret.len());
    secret.get(..end).unwrap_or(secret)
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    #[allow(deprecated)]
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A generated VAPID key pair: PKCS#8 private key (base64) and the 65-byte public point
/// (base64url) that browsers take as `applicationServerKey`.
#[derive(Debug, Clone)]
pub struct VapidKeyPair {
    pub private_pkcs8_b64: String,
    pub public_key_b64url: String,
}

/// Generates a P-256 key pair for VAPID.
pub fn generate_vapid() -> VapidKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256 key generation failed");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("fresh PKCS#8 parses");
    VapidKeyPair {
        private_pkcs8_b64: STANDARD.encode(pkcs8.as_ref()),
        public_key_b64url: to_b64url(pair.public_key().as_ref()),
    }
}

/// Extracts the DER body of a PEM block (any label).
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect();
    if body.is_empty() {
        return None;
    }
    STANDARD.decode(body).ok()
}

/// True when `pem` is a PKCS#8 P-256 private key, as Apple's `.p8` files are.
pub fn is_p256_pkcs8_pem(pem: &str) -> bool {
    pem_to_der(pem).is_some_and(|der| EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).is_ok())
}

/// True when `pem` is a PKCS#8 RSA private key, as Google service-account keys are.
pub fn is_rsa_pkcs8_pem(pem: &str) -> bool {
    pem_to_der(pem).is_some_and(|der| RsaKeyPair::from_pkcs8(&der).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_have_prefix_and_hash() {
        let s = mint("sk_");
        assert!(s.full.starts_with("sk_") && s.full.len() == 3 + 43);
        assert_eq!(s.prefix, &s.full[..11]);
        assert_eq!(lookup_prefix(&s.full), s.prefix);
        assert!(ct_eq(&hash(&s.full), &s.hash));
        assert!(!ct_eq(&hash("sk_other"), &s.hash));
        assert_ne!(mint("sk_").full, s.full);
    }

    #[test]
    fn lookup_prefix_of_short_or_odd_input_does_not_panic() {
        assert_eq!(lookup_prefix("sk_"), "sk_");
        assert_eq!(lookup_prefix("x"), "x");
        assert_eq!(lookup_prefix("ses_é€"), "ses_é€");
    }

    #[test]
    fn vapid_keys_are_uncompressed_points() {
        let k = generate_vapid();
        let public = crate::validate::b64url(&k.public_key_b64url).unwrap();
        assert!(crate::validate::is_p256_point(&public));
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", k.private_pkcs8_b64);
        assert!(is_p256_pkcs8_pem(&pem));
        assert!(!is_rsa_pkcs8_pem(&pem));
        assert!(!is_p256_pkcs8_pem("not a pem"));
    }
}
