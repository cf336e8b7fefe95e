//! Secrets at rest. Channel keys (VAPID, APNs `.p8`, FCM service-account keys), webhook signing
//! secrets and callback credentials are stored sealed with AES-256-GCM under a master key, so a
//! copy of the database (a backup, a stolen disk, a leaked dump) does not hand out the keys
//! Herald signs and sends with. The store seals on the way in and opens on the way out: the rest
//! of Herald sees plaintext.
//!
//! A sealed value is the text `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`:
//! - `v1` is AES-256-GCM with a random 96-bit nonce per value;
//! - the key id is the first 8 hex digits of the master key's SHA-256, so a reader knows which
//!   key sealed a value (current or previous) without trying both, and can name a missing one;
//! - the associated data is where the value lives (`channels/<id>/config.private_key`,
//!   `webhooks/<id>/secret`), so a sealed value copied into another row or field does not open:
//!   someone able to write the database still cannot make one account sign with another's key.
//!
//! Values without the prefix are plaintext from before encryption existed (or written by an older
//! node during a rolling upgrade): they read as they are and are sealed on the next start.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::keys::random_bytes;
use crate::validate::{b64_any, b64url, to_b64url};

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "enc:v1:";

/// Where secrets sit in a channel's config, as paths of object keys: the Web Push VAPID private
/// key, the APNs `.p8` key, the bnotify callback credential and the FCM service account's key.
pub const CHANNEL_SECRET_FIELDS: &[&[&str]] =
    &[&["vapid_private_key"], &["private_key"], &["callback_auth"], &["service_account", "private_key"]];

/// A 256-bit master key.
pub struct MasterKey {
    id: String,
    key: RandomizedNonceKey,
}

impl MasterKey {
    /// Parses 32 bytes in base64 (standard or url-safe alphabet, padded or not).
    pub fn parse(text: &str) -> Result<MasterKey, String> {
        let bytes = b64_any(text.trim()).ok_or("is not base64")?;
        if bytes.len() != 32 {
            return Err(format!("must be 32 bytes, not {}", bytes.len()));
        }
        let id = digest(&SHA256, &bytes).as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| "is not an AES-256 key")?;
        Ok(MasterKey { id, key })
    }

    /// The key's id, as it appears in the values it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

// The key itself never reaches logs.
impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// A fresh master key: 32 random bytes in padded standard base64.
pub fn generate_key() -> String {
    STANDARD.encode(random_bytes::<32>())
}

/// Why a stored secret does not open.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Sealed under a key that is configured neither as current nor as previous.
    #[error(
        "{context} is sealed under master key {key_id}, which is neither `secret_key` ({current}) nor \
         `secret_key_previous` ({}): configure the key it was sealed under",
        .previous.as_deref().unwrap_or("unset")
    )]
    UnknownKey { context: String, key_id: String, current: String, previous: Option<String> },
    /// The right key, but the value was altered, moved from another row, or is corrupt.
    #[error("{context} does not open under master key {key_id}: altered, moved from elsewhere, or corrupt")]
    Tampered { context: String, key_id: String },
    /// The prefix is there but the rest is not `<key id>:<base64url>`.
    #[error("{context} is not a well-formed sealed value")]
    Malformed { context: String },
}

/// The current master key, which seals, and optionally the previous one, which still opens
/// until `herald secrets rotate` has moved every value to the current key.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Option<MasterKey>,
}

/// How many rows a reseal rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResealReport {
    pub channels: u64,
    pub webhooks: u64,
}

/// What resealing one value does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Seal plaintext values; leave values under the previous key as they are (start-up).
    Plaintext,
    /// Also move values under the previous key to the current one (`herald secrets rotate`).
    Rotate,
}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `previous`.
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Keyring {
        // The same key twice is one key: nothing to fall back to.
        let previous = previous.filter(|p| p.id != current.id);
        Keyring { current, previous }
    }

    /// The current key's id.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for the place `context` names.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let mut buf = plaintext.as_bytes().to_vec();
        let nonce = self
            .current
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut buf)
            .expect("AES-GCM sealing cannot fail with a valid key and a random nonce");
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buf);
        format!("{SEALED_PREFIX}{}:{}", self.current.id, to_b64url(&out))
    }

    /// Opens a stored value; plaintext (no prefix) is returned as it is.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, SecretError> {
        self.open_with_key(context, stored).map(|(plain, _)| plain)
    }

    /// Opens a stored value, also telling which key it was under (`None` for plaintext).
    fn open_with_key(&self, context: &str, stored: &str) -> Result<(String, Option<&MasterKey>), SecretError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok((stored.to_string(), None));
        };
        let malformed = || SecretError::Malformed { context: context.to_string() };
        let (key_id, body) = rest.split_once(':').ok_or_else(malformed)?;
        let key = [Some(&self.current), self.previous.as_ref()].into_iter().flatten().find(|k| k.id == key_id);
        let Some(key) = key else {
            return Err(SecretError::UnknownKey {
                context: context.to_string(),
                key_id: key_id.to_string(),
                current: self.current.id.clone(),
                previous: self.previous.as_ref().map(|p| p.id.clone()),
            });
        };
        let mut bytes = b64url(body).filter(|b| b.len() > NONCE_LEN).ok_or_else(malformed)?;
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| malformed())?;
        let tampered = || SecretError::Tampered { context: context.to_string(), key_id: key_id.to_string() };
        let plain =
            key.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut ciphertext).map_err(|_| tampered())?;
        let plain = String::from_utf8(plain.to_vec()).map_err(|_| tampered())?;
        Ok((plain, Some(key)))
    }

    /// The value to store instead of `stored`, when it must change: plaintext gets sealed and,
    /// with [`Reseal::Rotate`], a value under the previous key moves to the current one. Every
    /// value is opened, so a value that cannot be is reported rather than carried along.
    pub fn reseal(&self, context: &str, stored: &str, mode: Reseal) -> Result<Option<String>, SecretError> {
        let (plain, key) = self.open_with_key(context, stored)?;
        let stale = match key {
            None => true,
            Some(k) => mode == Reseal::Rotate && k.id != self.current.id,
        };
        Ok(stale.then(|| self.seal(context, &plain)))
    }

    /// A channel config with its secret fields sealed.
    pub fn seal_channel_config(&self, channel_id: &str, config: &Value) -> Value {
        let mut out = config.clone();
        let sealed = for_each_secret(&mut out, |path, value| {
            Ok::<_, SecretError>(Some(self.seal(&channel_context(channel_id, path), value)))
        });
        sealed.expect("sealing does not fail");
        out
    }

    /// A stored channel config with its secret fields opened.
    pub fn open_channel_config(&self, channel_id: &str, mut config: Value) -> Result<Value, SecretError> {
        for_each_secret(&mut config, |path, value| self.open(&channel_context(channel_id, path), value).map(Some))?;
        Ok(config)
    }

    /// The stored channel config to write back when any secret field must change ([`Self::reseal`]).
    pub fn reseal_channel_config(
        &self,
        channel_id: &str,
        stored: &Value,
        mode: Reseal,
    ) -> Result<Option<Value>, SecretError> {
        let mut out = stored.clone();
        let mut changed = false;
        for_each_secret(&mut out, |path, value| {
            let new = self.reseal(&channel_context(channel_id, path), value, mode)?;
            changed |= new.is_some();
            Ok(new)
        })?;
        Ok(changed.then_some(out))
    }

    /// A webhook's signing secret, sealed.
    pub fn seal_webhook_secret(&self, webhook_id: &str, secret: &str) -> String {
        self.seal(&webhook_context(webhook_id), secret)
    }

    /// A webhook's stored signing secret, opened.
    pub fn open_webhook_secret(&self, webhook_id: &str, stored: &str) -> Result<String, SecretError> {
        self.open(&webhook_context(webhook_id), stored)
    }

    /// A webhook's stored signing secret to write back, when it must change ([`Self::reseal`]).
    pub fn reseal_webhook_secret(
        &self,
        webhook_id: &str,
        stored: &str,
        mode: Reseal,
    ) -> Result<Option<String>, SecretError> {
        self.reseal(&webhook_context(webhook_id), stored, mode)
    }
}

fn channel_context(channel_id: &str, path: &[&str]) -> String {
    format!("channels/{channel_id}/config.{}", path.join("."))
}

fn webhook_context(webhook_id: &str) -> String {
    format!("webhooks/{webhook_id}/secret")
}

/// Calls `f` on every secret string of a channel config and puts back what it returns (`None`
/// leaves the value). Absent, null or non-string fields are not secrets Herald wrote: left alone.
fn for_each_secret<E>(
    config: &mut Value,
    mut f: impl FnMut(&[&str], &str) -> Result<Option<String>, E>,
) -> Result<(), E> {
    for path in CHANNEL_SECRET_FIELDS {
        let Some((last, parents)) = path.split_last() else { continue };
        let mut node = Some(&mut *config);
        for key in parents {
            node = node.and_then(|n| n.get_mut(*key));
        }
        if let Some(Value::String(s)) = node.and_then(|n| n.get_mut(*last))
            && let Some(new) = f(path, s)?
        {
            *s = new;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
