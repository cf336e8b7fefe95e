//! Tests of VAPID signing and the token cache.

use super::*;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::{Value, json};

const SUBJECT: &str = "mailto:ops@example.com";
const AUD: &str = "https://fcm.googleapis.com";

fn key() -> VapidKey {
    // The generator production uses when a Web Push channel is created.
    let pair = herald_core::keys::generate_vapid();
    let der = base64::engine::general_purpose::STANDARD.decode(&pair.private_pkcs8_b64).unwrap();
    let key = VapidKey::from_pkcs8(&der).unwrap();
    assert_eq!(key.public_key_b64(), pair.public_key_b64url);
    key
}

fn decode_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Splits `vapid t=<jwt>, k=<key>` and checks the JWT against the key.
fn verify_header(header: &str, key: &VapidKey) -> Value {
    let rest = header.strip_prefix("vapid t=").unwrap();
    let (jwt, k) = rest.split_once(", k=").unwrap();
    assert_eq!(k, key.public_key_b64());
    let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(signature.len(), 64, "raw r||s, not DER");
    let public = URL_SAFE_NO_PAD.decode(k).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
        .verify(signing_input.as_bytes(), &signature)
        .expect("signature verifies");
    let (header_b64, claims_b64) = signing_input.split_once('.').unwrap();
    assert_eq!(decode_json(header_b64), json!({"typ": "JWT", "alg": "ES256"}));
    decode_json(claims_b64)
}

#[test]
fn header_constant_matches_its_json() {
    let encoded = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    assert_eq!(JWT_HEADER_B64, encoded);
}

#[test]
fn authorization_is_a_valid_es256_jwt_with_claims() {
    let key = key();
    let header = key.authorization(AUD, SUBJECT, 1_700_000_000).unwrap();
    let claims = verify_header(&header, &key);
    assert_eq!(claims, json!({"aud": AUD, "exp": 1_700_000_000u64, "sub": SUBJECT}));
}

#[test]
fn public_key_is_65_byte_uncompressed_point() {
    let key = key();
    let public = URL_SAFE_NO_PAD.decode(key.public_key_b64()).unwrap();
    assert_eq!(public.len(), 65);
    assert_eq!(public[0], 0x04);
    assert!(!key.public_key_b64().contains('='));
}

#[test]
fn raw_key_round_trip() {
    let key = key();
    let raw = VapidKey::from_raw(&key.private_scalar().unwrap(), key.public_key()).unwrap();
    assert_eq!(raw.public_key_b64(), key.public_key_b64());
    let other = self::key();
    let mismatched = VapidKey::from_raw(&key.private_scalar().unwrap(), other.public_key());
    assert!(matches!(mismatched, Err(VapidError::InvalidKey(_))));
}

#[test]
fn bad_inputs_are_rejected() {
    assert!(matches!(VapidKey::from_pkcs8(b"not a key"), Err(VapidError::InvalidKey(_))));
    let key = key();
    for subject in ["", "ops@example.com", "mailto:", "http://example.com", "https://"] {
        let result = key.authorization(AUD, subject, 1);
        assert_eq!(result, Err(VapidError::InvalidSubject), "{subject}");
    }
    assert!(key.authorization(AUD, "https://example.com/contact", 1).is_ok());
    assert!(VapidCache::new(self::key(), "nobody").is_err());
}

#[test]
fn debug_hides_private_key() {
    let key = key();
    let shown = format!("{key:?}");
    assert!(shown.contains(&key.public_key_b64()));
}

#[test]
fn cache_reuses_until_one_hour_before_expiry() {
    let cache = VapidCache::new(key(), SUBJECT).unwrap();
    let t0 = 1_000_000;
    let first = cache.authorization_at(AUD, t0).unwrap();
    let claims = verify_header(&first, cache.key());
    assert_eq!(claims["exp"], t0 + TOKEN_LIFETIME_SECS);

    let last_reuse = t0 + TOKEN_LIFETIME_SECS - REFRESH_MARGIN_SECS - 1;
    assert_eq!(cache.authorization_at(AUD, t0 + 60).unwrap(), first);
    assert_eq!(cache.authorization_at(AUD, last_reuse).unwrap(), first);

    let refreshed = cache.authorization_at(AUD, last_reuse + 1).unwrap();
    assert_ne!(refreshed, first);
    let claims = verify_header(&refreshed, cache.key());
    assert_eq!(claims["exp"], last_reuse + 1 + TOKEN_LIFETIME_SECS);
    assert_eq!(cache.authorization_at(AUD, last_reuse + 2).unwrap(), refreshed);
}

#[test]
fn cache_is_per_audience() {
    let cache = VapidCache::new(key(), SUBJECT).unwrap();
    let fcm = cache.authorization_at(AUD, 10).unwrap();
    let moz = cache.authorization_at("https://updates.push.services.mozilla.com", 10).unwrap();
    assert_ne!(fcm, moz);
    let claims = verify_header(&moz, cache.key());
    assert_eq!(claims["aud"], "https://updates.push.services.mozilla.com");
    assert_eq!(cache.authorization_at(AUD, 11).unwrap(), fcm);
    assert!(cache.authorization(AUD).is_ok());
}

#[test]
fn cache_size_is_bounded() {
    let cache = VapidCache::new(key(), SUBJECT).unwrap();
    for i in 0..=MAX_CACHED_AUDIENCES {
        cache.authorization_at(&format!("https://h{i}.notify.windows.com"), i as u64).unwrap();
    }
    let tokens = cache.tokens.lock().unwrap();
    assert_eq!(tokens.len(), MAX_CACHED_AUDIENCES);
    assert!(!tokens.contains_key("https://h0.notify.windows.com"), "oldest evicted");
}

#[test]
fn audience_origin_drops_path_and_default_port() {
    let cases = [
        ("https://fcm.googleapis.com/fcm/send/abc?x=1", "https://fcm.googleapis.com"),
        ("https://FCM.googleapis.com:443/x", "https://fcm.googleapis.com"),
        ("https://push.example:8443/x", "https://push.example:8443"),
        ("http://127.0.0.1:8080/push/1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:80/push/1", "http://127.0.0.1"),
        ("https://[::1]:8443/p", "https://[::1]:8443"),
    ];
    for (input, expected) in cases {
        let url = url::Url::parse(input).unwrap();
        assert_eq!(audience_origin(&url), expected, "{input}");
    }
}
