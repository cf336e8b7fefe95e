//! Test support: an independent RFC 8291 decryptor and user-agent key pairs.
//!
//! Compiled only for this crate's tests and with the `testing` cargo feature,
//! so the server's integration tests can decrypt what a mock push service
//! received. The decryptor is written from the RFC text (the HMAC pseudocode of
//! RFC 8291 section 3.4 and the record layout of RFC 8188 section 2) and shares
//! no code with [`super::crypto`]: a mistake in one is then unlikely to be
//! mirrored in the other and hidden by a round-trip test.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::crypto::UaKeys;

/// Why a body could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The body is shorter than its header claims.
    #[error("body is truncated")]
    Truncated,
    /// The record size is below the RFC 8188 minimum of 18.
    #[error("invalid record size")]
    RecordSize,
    /// The key id is not a 65-byte P-256 public key.
    #[error("key id is not an uncompressed P-256 public key")]
    KeyId,
    /// The user agent's private key was not accepted.
    #[error("invalid user agent private key")]
    PrivateKey,
    /// A record failed AES-GCM authentication.
    #[error("record authentication failed")]
    Authentication,
    /// A record's padding delimiter is missing or wrong.
    #[error("invalid record padding")]
    Padding,
}

/// Decrypts an `aes128gcm` Web Push body as a user agent would.
///
/// `ua_private` is the 32-byte big-endian private scalar, `ua_public` the
/// 65-byte uncompressed public key, `auth` the 16-byte auth secret.
///
/// # Errors
/// A [`DecryptError`] describing the first problem found.
pub fn decrypt(ua_private: &[u8], ua_public: &[u8], auth: &[u8], body: &[u8]) -> Result<Vec<u8>, DecryptError> {
    // RFC 8188 section 2.1: salt (16) | rs (4) | idlen (1) | keyid (idlen).
    let fixed = body.get(..21).ok_or(DecryptError::Truncated)?;
    let salt = &fixed[..16];
    let rs = u32::from_be_bytes([fixed[16], fixed[17], fixed[18], fixed[19]]);
    let idlen = usize::from(fixed[20]);
    let as_public = body.get(21..21 + idlen).ok_or(DecryptError::Truncated)?;
    if rs < 18 {
        return Err(DecryptError::RecordSize);
    }
    if idlen != 65 {
        return Err(DecryptError::KeyId);
    }
    let ecdh_secret = ecdh(ua_private, as_public)?;
    let (cek, nonce) = rfc8291_keys(&ecdh_secret, auth, ua_public, as_public, salt);
    open_records(&cek, &nonce, rs as usize, &body[21 + idlen..])
}

fn ecdh(ua_private: &[u8], as_public: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let private = PrivateKey::from_private_key(&ECDH_P256, ua_private).map_err(|_| DecryptError::PrivateKey)?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, as_public);
    agreement::agree(&private, peer, DecryptError::KeyId, |secret| Ok(secret.to_vec()))
}

/// RFC 8291 section 3.4, step by step with HMAC-SHA-256 as the RFC writes it.
fn rfc8291_keys(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> ([u8; 16], [u8; 12]) {
    // PRK_key = HMAC-SHA-256(auth_secret, ecdh_secret)
    let prk_key = hmac_sha256(auth_secret, &[ecdh_secret]);
    // IKM = HMAC-SHA-256(PRK_key, "WebPush: info" || 0x00 || ua_public || as_public || 0x01)
    let ikm = hmac_sha256(&prk_key, &[b"WebPush: info", &[0], ua_public, as_public, &[1]]);
    // PRK = HMAC-SHA-256(salt, IKM)
    let prk = hmac_sha256(salt, &[&ikm]);
    // CEK = HMAC-SHA-256(PRK, "Content-Encoding: aes128gcm" || 0x00 || 0x01)[0..15]
    let cek = hmac_sha256(&prk, &[b"Content-Encoding: aes128gcm", &[0], &[1]]);
    // NONCE = HMAC-SHA-256(PRK, "Content-Encoding: nonce" || 0x00 || 0x01)[0..11]
    let nonce = hmac_sha256(&prk, &[b"Content-Encoding: nonce", &[0], &[1]]);
    let mut cek16 = [0u8; 16];
    cek16.copy_from_slice(&cek[..16]);
    let mut nonce12 = [0u8; 12];
    nonce12.copy_from_slice(&nonce[..12]);
    (cek16, nonce12)
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for part in parts {
        ctx.update(part);
    }
    ctx.sign().as_ref().to_vec()
}

/// RFC 8188 section 2: records of `rs` bytes (the last may be shorter), each
/// sealed with NONCE XOR the record's sequence number.
fn open_records(cek: &[u8; 16], nonce: &[u8; 12], rs: usize, ciphertext: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, cek).map_err(|_| DecryptError::Authentication)?);
    let records: Vec<&[u8]> = ciphertext.chunks(rs).collect();
    if records.is_empty() {
        return Err(DecryptError::Truncated);
    }
    let mut plaintext = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        let is_last = seq + 1 == records.len();
        let mut buf = record.to_vec();
        let opened = key
            .open_in_place(record_nonce(nonce, seq), Aad::empty(), &mut buf)
            .map_err(|_| DecryptError::Authentication)?;
        plaintext.extend_from_slice(unpad(opened, is_last)?);
    }
    Ok(plaintext)
}

fn record_nonce(nonce: &[u8; 12], seq: usize) -> Nonce {
    let mut bytes = *nonce;
    let seq = (seq as u64).to_be_bytes();
    for (b, s) in bytes[4..].iter_mut().zip(seq) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(bytes)
}

/// Padding is a delimiter (0x02 for the last record, 0x01 otherwise)
/// followed by any number of zero bytes.
fn unpad(record: &[u8], is_last: bool) -> Result<&[u8], DecryptError> {
    let end = record.iter().rposition(|&b| b != 0).ok_or(DecryptError::Padding)?;
    let expected = if is_last { 2 } else { 1 };
    if record[end] != expected {
        return Err(DecryptError::Padding);
    }
    Ok(&record[..end])
}

/// A simulated browser subscription key pair for tests.
#[derive(Clone)]
pub struct UaKeyPair {
    /// 32-byte big-endian private scalar.
    pub private: Vec<u8>,
    /// Uncompressed public key (the subscription's `p256dh`).
    pub public: [u8; 65],
    /// Authentication secret (the subscription's `auth`).
    pub auth: [u8; 16],
}

impl UaKeyPair {
    /// Generates a fresh key pair and auth secret.
    ///
    /// # Panics
    /// If the crypto library fails; acceptable for a test helper.
    #[must_use]
    pub fn generate() -> Self {
        let key = PrivateKey::generate(&ECDH_P256).expect("generate P-256 key");
        let private: EcPrivateKeyBin<'_> = key.as_be_bytes().expect("export private key");
        let public = key.compute_public_key().expect("compute public key");
        let mut auth = [0u8; 16];
        aws_lc_rs::rand::fill(&mut auth).expect("random auth secret");
        Self {
            private: private.as_ref().to_vec(),
            public: public.as_ref().try_into().expect("65-byte public key"),
            auth,
        }
    }

    /// The subscription keys an application server would store.
    ///
    /// # Panics
    /// Never for a generated key pair.
    #[must_use]
    pub fn ua_keys(&self) -> UaKeys {
        UaKeys::new(self.public, self.auth).expect("generated key is valid")
    }

    /// `p256dh` as a subscription's JSON carries it (base64url, no padding).
    #[must_use]
    pub fn p256dh_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }

    /// `auth` as a subscription's JSON carries it (base64url, no padding).
    #[must_use]
    pub fn auth_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.auth)
    }

    /// Decrypts a body addressed to this key pair.
    ///
    /// # Errors
    /// See [`decrypt`].
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, DecryptError> {
        decrypt(&self.private, &self.public, &self.auth, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webpush::crypto::{MAX_PLAINTEXT, encrypt};

    // RFC 8291 Appendix A.
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn decrypts_rfc8291_appendix_a() {
        let plaintext = decrypt(&b64(UA_PRIVATE), &b64(UA_PUBLIC), &b64(AUTH), &b64(BODY)).unwrap();
        assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
    }

    #[test]
    fn round_trip_random_keys_and_sizes() {
        for len in [0, 1, 15, 16, 17, 100, 1000, 3000, MAX_PLAINTEXT - 1, MAX_PLAINTEXT] {
            let ua = UaKeyPair::generate();
            let mut plaintext = vec![0u8; len];
            aws_lc_rs::rand::fill(&mut plaintext).unwrap();
            let body = encrypt(&ua.ua_keys(), &plaintext).unwrap();
            assert_eq!(ua.decrypt(&body).unwrap(), plaintext, "len {len}");
        }
    }

    #[test]
    fn base64_helpers_round_trip_through_ua_keys() {
        let ua = UaKeyPair::generate();
        let keys = UaKeys::from_base64(&ua.p256dh_b64(), &ua.auth_b64()).unwrap();
        let body = encrypt(&keys, b"hello").unwrap();
        assert_eq!(ua.decrypt(&body).unwrap(), b"hello");
    }

    #[test]
    fn wrong_keys_or_tampering_fail() {
        let ua = UaKeyPair::generate();
        let other = UaKeyPair::generate();
        let body = encrypt(&ua.ua_keys(), b"secret").unwrap();
        assert_eq!(other.decrypt(&body), Err(DecryptError::Authentication));
        let mut wrong_auth = ua.clone();
        wrong_auth.auth[0] ^= 1;
        assert_eq!(wrong_auth.decrypt(&body), Err(DecryptError::Authentication));
        let mut tampered = body.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ua.decrypt(&tampered), Err(DecryptError::Authentication));
        assert_eq!(ua.decrypt(&body[..50]), Err(DecryptError::Truncated));
    }
}
