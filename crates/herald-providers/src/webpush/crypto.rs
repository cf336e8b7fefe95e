//! RFC 8291 Web Push message encryption (`Content-Encoding: aes128gcm`).
//!
//! Every message gets a fresh ephemeral P-256 key pair and a fresh random salt,
//! so no key material is ever reused across messages. The output is a single
//! RFC 8188 record:
//!
//! ```text
//! salt (16) || rs (u32 BE = 4096) || idlen (1 = 65) || keyid (65, sender public key)
//! || AES-128-GCM(plaintext || 0x02) || tag (16)
//! ```
//!
//! This is the delivery hot path (one ECDH per message and subscription), which
//! is why it sits on aws-lc-rs rather than a pure-software curve implementation.

use std::fmt;

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, ParsedPublicKey, PublicKey, UnparsedPublicKey};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::rand::{self, SystemRandom};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Value for the HTTP `Content-Encoding` header of an encrypted push message.
pub const CONTENT_ENCODING: &str = "aes128gcm";

/// Record size written into the header. Push services must accept at least
/// 4096 bytes of body (RFC 8030 section 7.2), so one record always suffices.
pub const RECORD_SIZE: u32 = 4096;

/// Largest encrypted body we produce; larger bodies may be refused by push services.
pub const MAX_BODY: usize = 4096;

/// Length of an uncompressed SEC1 P-256 point (`0x04 || X || Y`).
pub const PUBLIC_KEY_LEN: usize = 65;

/// Length of the user agent's authentication secret.
pub const AUTH_LEN: usize = 16;

const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// salt || rs || idlen || keyid
const HEADER_LEN: usize = SALT_LEN + 4 + 1 + PUBLIC_KEY_LEN;
/// RFC 8188: the last record's padding starts with 0x02. We add no further padding.
const LAST_RECORD_DELIMITER: u8 = 0x02;

/// Largest plaintext that fits in [`MAX_BODY`]: 4096 - 86 (header) - 16 (tag)
/// - 1 (padding delimiter) = 3993 bytes.
pub const MAX_PLAINTEXT: usize = MAX_BODY - HEADER_LEN - TAG_LEN - 1;

// Context strings from RFC 8291 section 3.4 and RFC 8188 section 2.2; the
// trailing NUL is part of each label.
const KEY_INFO_LABEL: &[u8] = b"WebPush: info\0";
const CEK_INFO: &[u8] = b"Content-Encoding: aes128gcm\0";
const NONCE_INFO: &[u8] = b"Content-Encoding: nonce\0";

const CEK_LEN: usize = 16;
const IKM_LEN: usize = 32;

/// Subscriptions are stored as base64url without padding, but some clients
/// send padding (or the standard alphabet, handled in [`decode_fixed`]);
/// accepting both costs nothing and avoids rejecting valid keys.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Errors from Web Push encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// `p256dh` is not a base64url-encoded, uncompressed, on-curve P-256 point.
    #[error("p256dh is not a valid uncompressed P-256 public key")]
    InvalidP256dh,
    /// `auth` is not a base64url-encoded 16-byte secret.
    #[error("auth is not a valid 16-byte authentication secret")]
    InvalidAuth,
    /// The plaintext would make the encrypted body exceed [`MAX_BODY`].
    #[error("payload of {len} bytes exceeds the Web Push limit of {max} bytes")]
    PlaintextTooLarge {
        /// Length of the rejected plaintext.
        len: usize,
        /// The limit, [`MAX_PLAINTEXT`].
        max: usize,
    },
    /// The crypto library failed (random generation, key generation, sealing).
    #[error("internal cryptographic failure")]
    Internal,
}

impl From<Unspecified> for CryptoError {
    fn from(_: Unspecified) -> Self {
        Self::Internal
    }
}

/// A push subscription's user-agent keys (the `keys` object of a `PushSubscription`).
#[derive(Clone, PartialEq, Eq)]
pub struct UaKeys {
    /// The user agent's public key as an uncompressed P-256 point.
    pub p256dh: [u8; PUBLIC_KEY_LEN],
    /// The user agent's authentication secret.
    pub auth: [u8; AUTH_LEN],
}

impl UaKeys {
    /// Builds keys from raw bytes, validating that `p256dh` is an uncompressed
    /// point on P-256.
    ///
    /// # Errors
    /// [`CryptoError::InvalidP256dh`] if the point is compressed, malformed or
    /// not on the curve.
    pub fn new(p256dh: [u8; PUBLIC_KEY_LEN], auth: [u8; AUTH_LEN]) -> Result<Self, CryptoError> {
        validate_p256dh(&p256dh)?;
        Ok(Self { p256dh, auth })
    }

    /// Builds keys from the base64url strings of a subscription's `keys`
    /// object. Padding and the standard base64 alphabet are tolerated.
    ///
    /// # Errors
    /// [`CryptoError::InvalidP256dh`] or [`CryptoError::InvalidAuth`] when a
    /// value does not decode to the right length, or the point is invalid.
    pub fn from_base64(p256dh: &str, auth: &str) -> Result<Self, CryptoError> {
        let p256dh = decode_fixed(p256dh).ok_or(CryptoError::InvalidP256dh)?;
        let auth = decode_fixed(auth).ok_or(CryptoError::InvalidAuth)?;
        Self::new(p256dh, auth)
    }
}

/// The auth secret is a shared secret with the browser: keep it out of logs.
impl fmt::Debug for UaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaKeys")
            .field("p256dh", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.p256dh))
            .field("auth", &"<redacted>")
            .finish()
    }
}

/// Decodes base64url (or standard base64), with or without padding, into
/// exactly `N` bytes.
fn decode_fixed<const N: usize>(value: &str) -> Option<[u8; N]> {
    let normalised: String = value
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    B64_LENIENT.decode(normalised).ok()?.try_into().ok()
}

/// Checks the 0x04 prefix ourselves because the parser would also accept the
/// compressed form, which RFC 8291 does not allow; parsing checks the point is
/// on the curve (an invalid-curve point must never reach ECDH).
fn validate_p256dh(p256dh: &[u8; PUBLIC_KEY_LEN]) -> Result<(), CryptoError> {
    if p256dh[0] != 0x04 {
        return Err(CryptoError::InvalidP256dh);
    }
    ParsedPublicKey::try_from(&UnparsedPublicKey::new(&ECDH_P256, p256dh))
        .map(|_| ())
        .map_err(|_| CryptoError::InvalidP256dh)
}

/// Encrypts `plaintext` for the subscription owning `keys`, returning the
/// complete `aes128gcm` request body.
///
/// # Errors
/// [`CryptoError::PlaintextTooLarge`] above [`MAX_PLAINTEXT`] bytes,
/// [`CryptoError::InvalidP256dh`] if the user agent key is rejected during
/// ECDH, [`CryptoError::Internal`] if the crypto library fails.
pub fn encrypt(keys: &UaKeys, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    check_len(plaintext)?;
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt)?;
    let private = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new())?;
    let as_public = public_key_bytes(private.compute_public_key()?)?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, &keys.p256dh);
    // The shared secret only lives inside the closure; aws-lc frees it after.
    agreement::agree_ephemeral(private, peer, CryptoError::InvalidP256dh, |ecdh_secret| {
        seal(keys, &as_public, ecdh_secret, &salt, plaintext)
    })
}

/// Deterministic variant of [`encrypt`] for known-answer tests: the sender's
/// private key (32-byte big-endian scalar) and the salt are supplied.
#[cfg(test)]
pub(crate) fn encrypt_with(
    keys: &UaKeys,
    plaintext: &[u8],
    as_private: &[u8],
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>, CryptoError> {
    check_len(plaintext)?;
    let private = agreement::PrivateKey::from_private_key(&ECDH_P256, as_private).map_err(|_| CryptoError::Internal)?;
    let as_public = public_key_bytes(private.compute_public_key()?)?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, &keys.p256dh);
    agreement::agree(&private, peer, CryptoError::InvalidP256dh, |ecdh_secret| {
        seal(keys, &as_public, ecdh_secret, salt, plaintext)
    })
}

fn check_len(plaintext: &[u8]) -> Result<(), CryptoError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CryptoError::PlaintextTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT });
    }
    Ok(())
}

fn public_key_bytes(key: PublicKey) -> Result<[u8; PUBLIC_KEY_LEN], CryptoError> {
    key.as_ref().try_into().map_err(|_| CryptoError::Internal)
}

/// Builds the body in one allocation: header, then the record encrypted in place.
fn seal(
    keys: &UaKeys,
    as_public: &[u8; PUBLIC_KEY_LEN],
    ecdh_secret: &[u8],
    salt: &[u8; SALT_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (cek, nonce) = derive_cek_and_nonce(keys, as_public, ecdh_secret, salt)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek)?);

    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(PUBLIC_KEY_LEN as u8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(plaintext);
    body.push(LAST_RECORD_DELIMITER);

    // Single record, so the sequence number is 0 and the nonce is used as derived.
    let nonce = Nonce::assume_unique_for_key(nonce);
    let tag = key.seal_in_place_separate_tag(nonce, Aad::empty(), &mut body[HEADER_LEN..])?;
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}

/// Output length for HKDF-Expand when it is not an AEAD key length.
struct OkmLen(usize);

impl KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// Key derivation of RFC 8291 section 3.3 (combining the ECDH and auth
/// secrets into the IKM) followed by RFC 8188 section 2.2 (CEK and nonce).
fn derive_cek_and_nonce(
    keys: &UaKeys,
    as_public: &[u8; PUBLIC_KEY_LEN],
    ecdh_secret: &[u8],
    salt: &[u8; SALT_LEN],
) -> Result<([u8; CEK_LEN], [u8; NONCE_LEN]), CryptoError> {
    let prk_key = Salt::new(HKDF_SHA256, &keys.auth).extract(ecdh_secret);
    let key_info: [&[u8]; 3] = [KEY_INFO_LABEL, &keys.p256dh, as_public];
    let mut ikm = [0u8; IKM_LEN];
    prk_key.expand(&key_info, OkmLen(IKM_LEN))?.fill(&mut ikm)?;

    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let mut cek = [0u8; CEK_LEN];
    prk.expand(&[CEK_INFO], OkmLen(CEK_LEN))?.fill(&mut cek)?;
    let mut nonce = [0u8; NONCE_LEN];
    prk.expand(&[NONCE_INFO], OkmLen(NONCE_LEN))?.fill(&mut nonce)?;
    Ok((cek, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    // RFC 8291 Appendix A.
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const NONCE: &str = "4h_95klXJ5E_qnoN";
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    fn rfc_keys() -> UaKeys {
        UaKeys::from_base64(UA_PUBLIC, AUTH).unwrap()
    }

    #[test]
    fn max_plaintext_is_3993() {
        assert_eq!(HEADER_LEN, 86);
        assert_eq!(MAX_PLAINTEXT, 3993);
    }

    #[test]
    fn rfc8291_appendix_a_body() {
        let salt: [u8; SALT_LEN] = b64(SALT).try_into().unwrap();
        let body = encrypt_with(&rfc_keys(), PLAINTEXT, &b64(AS_PRIVATE), &salt).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), BODY);
    }

    #[test]
    fn rfc8291_appendix_a_intermediate_values() {
        let as_public: [u8; PUBLIC_KEY_LEN] = b64(AS_PUBLIC).try_into().unwrap();
        let salt: [u8; SALT_LEN] = b64(SALT).try_into().unwrap();
        let (cek, nonce) = derive_cek_and_nonce(&rfc_keys(), &as_public, &b64(ECDH_SECRET), &salt).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(cek), CEK);
        assert_eq!(URL_SAFE_NO_PAD.encode(nonce), NONCE);
    }

    #[test]
    fn fresh_key_and_salt_per_message() {
        let a = encrypt(&rfc_keys(), PLAINTEXT).unwrap();
        let b = encrypt(&rfc_keys(), PLAINTEXT).unwrap();
        assert_ne!(a[..SALT_LEN], b[..SALT_LEN], "salt reused");
        assert_ne!(a[21..HEADER_LEN], b[21..HEADER_LEN], "ephemeral key reused");
        assert_eq!(a.len(), HEADER_LEN + PLAINTEXT.len() + 1 + TAG_LEN);
        assert_eq!(a[16..20], RECORD_SIZE.to_be_bytes());
        assert_eq!(a[20], 65);
    }

    #[test]
    fn max_plaintext_fits_in_4096_bytes() {
        let body = encrypt(&rfc_keys(), &[7u8; MAX_PLAINTEXT]).unwrap();
        assert_eq!(body.len(), MAX_BODY);
    }

    #[test]
    fn oversized_plaintext_is_rejected() {
        let err = encrypt(&rfc_keys(), &[0u8; MAX_PLAINTEXT + 1]).unwrap_err();
        let expected = CryptoError::PlaintextTooLarge { len: MAX_PLAINTEXT + 1, max: MAX_PLAINTEXT };
        assert_eq!(err, expected);
    }

    #[test]
    fn padded_and_standard_alphabet_keys_are_accepted() {
        let padded = format!("{UA_PUBLIC}=");
        let standard = UA_PUBLIC.replace('-', "+").replace('_', "/");
        assert_eq!(UaKeys::from_base64(&padded, "BTBZMqHH6r4Tts7J_aSIgg==").unwrap(), rfc_keys());
        assert_eq!(UaKeys::from_base64(&standard, AUTH).unwrap(), rfc_keys());
    }

    #[test]
    fn bad_keys_are_rejected() {
        let point = b64(UA_PUBLIC);
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        let mut compressed = point.clone();
        compressed[0] = 0x02;
        let bad_points = [
            URL_SAFE_NO_PAD.encode(&off_curve),
            URL_SAFE_NO_PAD.encode(&compressed),
            URL_SAFE_NO_PAD.encode(&point[..33]),
            URL_SAFE_NO_PAD.encode([0u8; 65]),
            "not base64!".to_owned(),
            String::new(),
        ];
        for p in &bad_points {
            assert_eq!(UaKeys::from_base64(p, AUTH), Err(CryptoError::InvalidP256dh), "{p}");
        }
        for auth in ["", "BTBZMqHH6r4Tts7J_aSI", "BTBZMqHH6r4Tts7J_aSIggAA", "$$$"] {
            let err = UaKeys::from_base64(UA_PUBLIC, auth);
            assert_eq!(err, Err(CryptoError::InvalidAuth), "{auth}");
        }
    }

    #[test]
    fn unvalidated_bad_point_fails_at_encryption() {
        let mut keys = rfc_keys();
        keys.p256dh[64] ^= 1;
        assert_eq!(encrypt(&keys, b"x"), Err(CryptoError::InvalidP256dh));
    }

    #[test]
    fn debug_redacts_auth() {
        let shown = format!("{:?}", rfc_keys());
        assert!(!shown.contains(AUTH) && shown.contains("redacted"));
    }
}
