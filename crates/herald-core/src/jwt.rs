//! Verification of user JWTs presented by browsers and apps (DESIGN.md section 3).
//!
//! The pitfalls closed here: `alg: none` never verifies (it is not an algorithm we accept);
//! the algorithm is pinned by the signing key, so an HS256 token "signed" with an RSA public
//! key is refused before any verification; an unknown `kid` is refused; `jku`/`x5u` are never
//! fetched; `exp` is required (with 60 s leeway) and `nbf` honoured.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::model::{SigningAlgorithm, SigningKey};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// Whether `exp` must be present. Herald's own API requires it; the notiflows surface only
/// recommends it (and honours it when present).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpPolicy {
    Required,
    Optional,
}

fn algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::Rs256 => Algorithm::RS256,
        SigningAlgorithm::Es256 => Algorithm::ES256,
    }
}

/// Parses a PEM public key for `alg`; used to validate a key when it is registered.
pub fn decoding_key(alg: SigningAlgorithm, pem: &str) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
    match alg {
        SigningAlgorithm::Rs256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
        SigningAlgorithm::Es256 => DecodingKey::from_ec_pem(pem.as_bytes()),
    }
}

/// Verifies `token` against the account's signing keys and returns its `sub`.
/// The error is a short reason suitable for a 401 message.
pub fn verify_user_token(token: &str, keys: &[SigningKey], exp: ExpPolicy) -> Result<String, &'static str> {
    let header = decode_header(token).map_err(|_| "malformed user token")?;
    let candidates: Vec<&SigningKey> = match &header.kid {
        Some(kid) => keys.iter().filter(|k| &k.id == kid).collect(),
        None => keys.iter().filter(|k| algorithm(k.algorithm) == header.alg).collect(),
    };
    // Without `kid` a token is checked against one key at most: trying every key of an account
    // would let one request cost as many signature checks as the account has keys.
    if header.kid.is_none() && candidates.len() > 1 {
        return Err("the account has several signing keys of this algorithm: the token must name one with kid");
    }
    if candidates.is_empty() {
        return Err(if header.kid.is_some() {
            "unknown signing key (kid)"
        } else {
            "no signing key for this algorithm"
        });
    }
    let mut last = "invalid user token";
    for key in candidates {
        // Pinning: the key decides the algorithm, never the token's header.
        let alg = algorithm(key.algorithm);
        if header.alg != alg {
            return Err("token algorithm does not match the signing key");
        }
        let Ok(decoding) = decoding_key(key.algorithm, &key.public_key_pem) else {
            continue;
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.validate_exp = true;
        let mut required = vec!["sub"];
        if exp == ExpPolicy::Required {
            required.push("exp");
        }
        if let Some(aud) = &key.audience {
            validation.set_audience(&[aud]);
            validation.validate_aud = true;
            required.push("aud");
        }
        if let Some(iss) = &key.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        match decode::<Claims>(token, &decoding, &validation) {
            Ok(data) if !data.claims.sub.is_empty() => return Ok(data.claims.sub),
            Ok(_) => last = "user token has an empty sub",
            Err(e) => last = describe(e.kind()),
        }
    }
    Err(last)
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "user token expired",
        K::ImmatureSignature => "user token not yet valid (nbf)",
        K::InvalidSignature => "user token signature invalid",
        K::MissingRequiredClaim(_) => {
            "user token lacks a required claim (sub, exp, and aud/iss where the key sets them)"
        }
        K::InvalidAudience => "user token audience (aud) does not match the signing key",
        K::InvalidIssuer => "user token issuer (iss) does not match the signing key",
        K::InvalidAlgorithm => "token algorithm does not match the signing key",
        _ => "invalid user token",
    }
}
