//! Devices registered by push token, as the Discord-style and Bright Pattern surfaces hand them
//! over: the account's default channel of the token's type, several tokens validated before any
//! is stored, unregistration for one user only, and multi-user syncs with signed, expiring sync
//! tokens (DESIGN.md section 2: users a sync linked keep the device).

use aws_lc_rs::hmac;
use serde_json::json;

use super::{Registration, Service};
use crate::clock::now_ms;
use crate::error::{FieldError, ServiceError};
use crate::keys;
use crate::model::{Channel, ChannelType, Environment, Subscription, SubscriptionKind};
use crate::validate::{self, to_b64url};

/// How long a device sync token is valid.
pub const SYNC_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// Most sync tokens one sync may carry.
pub const MAX_SYNC_TOKENS: usize = 20;
/// The deployment secret that signs sync tokens.
const SYNC_SECRET: &str = "device_sync_token";

/// Where a device token goes: a channel type and, for APNs, the host and the push kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRoute {
    pub channel_type: ChannelType,
    /// `None`: the channel's default environment.
    pub environment: Option<Environment>,
    pub kind: SubscriptionKind,
}

/// One device token to register. The field names are the surface's own, so that errors point
/// at the request's fields.
#[derive(Debug, Clone)]
pub struct DeviceToken {
    pub route: DeviceRoute,
    pub token: String,
    /// APNs only: replaces the channel's bundle id as the `apns-topic` of this device.
    pub bundle_id: Option<String>,
    /// The field that chose the route, named when the account has no channel of its type.
    pub route_field: &'static str,
    /// The field that carried the token, named when the token is invalid.
    pub token_field: &'static str,
}

impl Service {
    /// The account's default channel of `channel_type`; a 422 on `field` (reason
    /// `not_configured`) when the account has none.
    pub async fn default_channel(
        &self,
        account_id: i64,
        channel_type: ChannelType,
        field: &str,
    ) -> Result<Channel, ServiceError> {
        self.store.default_channel(account_id, channel_type).await?.ok_or_else(|| {
            ServiceError::invalid(field, "not_configured", format!("the account has no {channel_type} channel"))
        })
    }

    /// Resolves a device's channel and validates its token, storing nothing.
    async fn device_registration(&self, account_id: i64, d: &DeviceToken) -> Result<Registration, ServiceError> {
        let channel = self.default_channel(account_id, d.route.channel_type, d.route_field).await?;
        let settings = match &d.bundle_id {
            Some(bundle) => json!({"token": d.token, "bundle_id": bundle}),
            None => json!({"token": d.token}),
        };
        validate::settings(channel.channel_type, &settings, self.endpoints.as_ref()).map_err(|errors| {
            let renamed = errors.into_iter().map(|mut e| {
                if e.field == "settings.token" {
                    e.field = d.token_field.to_string();
                }
                e
            });
            ServiceError::Validation(renamed.collect())
        })?;
        Ok(Registration {
            channel_id: Some(channel.id),
            settings,
            kind: Some(d.route.kind),
            environment: d.route.environment,
            ..Default::default()
        })
    }

    /// Validates every device before anything is stored; the errors of all of them together.
    pub(super) async fn device_registrations(
        &self,
        account_id: i64,
        devices: &[DeviceToken],
    ) -> Result<Vec<Registration>, ServiceError> {
        let mut errors = Vec::new();
        let mut regs = Vec::new();
        for d in devices {
            match self.device_registration(account_id, d).await {
                Ok(reg) => regs.push(reg),
                Err(ServiceError::Validation(e)) => errors.extend(e),
                Err(e) => return Err(e),
            }
        }
        if errors.is_empty() { Ok(regs) } else { Err(ServiceError::Validation(errors)) }
    }

    /// Registers a user's device tokens (e.g. an APNs token and its VoIP token): a plain
    /// registration, so the device moves to this user unless a sync linked it to others.
    #[tracing::instrument(skip_all, fields(account = account_id, devices = devices.len()))]
    pub async fn register_devices(
        &self,
        account_id: i64,
        external_id: &str,
        devices: &[DeviceToken],
    ) -> Result<Vec<Subscription>, ServiceError> {
        let mut subscriptions = Vec::new();
        for reg in self.device_registrations(account_id, devices).await? {
            subscriptions.push(self.register_subscription(account_id, external_id, reg).await?.value);
        }
        Ok(subscriptions)
    }

    /// Removes a device token from one user only; users a sync linked to the device keep it.
    /// Returns how many subscriptions went (none is not an error: unregistering is idempotent).
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn unregister_device(
        &self,
        account_id: i64,
        external_id: &str,
        route: DeviceRoute,
        token: &str,
    ) -> Result<u64, ServiceError> {
        let mut removed = 0;
        let address = validate::canonical_token(route.channel_type, token);
        for id in self.store.user_subscription_ids(account_id, external_id, &address).await? {
            let Some(sub) = self.store.get_subscription(account_id, id).await? else { continue };
            if sub.channel_type != route.channel_type || sub.kind != route.kind {
                continue;
            }
            self.store.unlink_device(account_id, &sub.channel_id, &address, external_id).await?;
            match self.delete_subscription(account_id, id, Some(external_id)).await {
                Ok(()) => removed += 1,
                Err(ServiceError::NotFound { .. }) => {} // deleted concurrently: the outcome is the same
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    async fn sync_key(&self) -> Result<hmac::Key, ServiceError> {
        let secret = self.store.deployment_secret(SYNC_SECRET, &keys::random_bytes::<32>()).await?;
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
    }

    /// A sync token naming the user, valid for [`SYNC_TOKEN_TTL_SECS`]:
    /// `base64url(<account>:<user>).base64url(<expiry, Unix seconds>).base64url(HMAC-SHA256)`,
    /// signed with a per-deployment secret generated on first use.
    pub async fn device_sync_token(&self, account_id: i64, external_id: &str) -> Result<String, ServiceError> {
        let key = self.sync_key().await?;
        let expires = now_ms() / 1000 + SYNC_TOKEN_TTL_SECS;
        let body = format!(
            "{}.{}",
            to_b64url(format!("{account_id}:{external_id}").as_bytes()),
            to_b64url(expires.to_string().as_bytes())
        );
        let mac = hmac::sign(&key, body.as_bytes());
        Ok(format!("{body}.{}", to_b64url(mac.as_ref())))
    }

    /// The user a sync token names, when it is genuine, unexpired, of this account, and the
    /// user still exists.
    async fn sync_token_user(
        &self,
        key: &hmac::Key,
        account_id: i64,
        token: &str,
    ) -> Result<Option<String>, ServiceError> {
        let Some((who, expires)) = verified_parts(key, token) else { return Ok(None) };
        let decode = |part: &str| validate::b64url(part).and_then(|b| String::from_utf8(b).ok());
        if decode(expires).and_then(|e| e.parse::<i64>().ok()).is_none_or(|e| e.saturating_mul(1000) <= now_ms()) {
            return Ok(None);
        }
        let Some(who) = decode(who) else { return Ok(None) };
        let Some((account, user)) = who.split_once(':') else { return Ok(None) };
        if account.parse::<i64>().ok() != Some(account_id) {
            return Ok(None);
        }
        Ok(self.store.get_user(account_id, user).await?.map(|u| u.external_id))
    }

    /// Syncs a device across users: registers it for the caller and for every user a valid sync
    /// token names, all active, and links them so that a later plain registration by one of them
    /// keeps the others. A new sync replaces the previous links. Returns the invalid sync tokens
    /// in request order.
    ///
    /// Everything is validated before anything is written. The links and each user's
    /// registration are separate transactions; a sync is idempotent, so a client whose sync
    /// failed half-way simply repeats it.
    #[tracing::instrument(skip_all, fields(account = account_id, tokens = sync_tokens.len()))]
    pub async fn sync_device(
        &self,
        account_id: i64,
        external_id: &str,
        device: &DeviceToken,
        sync_tokens: &[String],
    ) -> Result<Vec<String>, ServiceError> {
        validate::external_id("user", external_id).map_err(|e| ServiceError::Validation(vec![e]))?;
        if sync_tokens.len() > MAX_SYNC_TOKENS {
            return Err(ServiceError::Validation(vec![FieldError::new(
                "push_sync_tokens",
                "too_long",
                format!("at most {MAX_SYNC_TOKENS} sync tokens"),
            )]));
        }
        let reg = self.device_registrations(account_id, std::slice::from_ref(device)).await?.remove(0);
        let key = self.sync_key().await?;
        let mut users = vec![external_id.to_string()];
        let mut invalid = Vec::new();
        for token in sync_tokens {
            match self.sync_token_user(&key, account_id, token).await? {
                Some(user) if !users.contains(&user) => users.push(user),
                Some(_) => {}
                None => invalid.push(token.clone()),
            }
        }
        let channel_id = reg.channel_id.clone().unwrap_or_default();
        // Links first, so that each registration below keeps the other linked users.
        let address = reg.settings.get("token").and_then(serde_json::Value::as_str).unwrap_or(&device.token);
        let address = validate::canonical_token(device.route.channel_type, address);
        self.store.set_device_links(account_id, &channel_id, &address, &users).await?;
        for user in &users {
            self.register_subscription(account_id, user, reg.clone()).await?;
        }
        Ok(invalid)
    }
}

/// The two signed parts of a sync token whose MAC verifies (in constant time).
fn verified_parts<'a>(key: &hmac::Key, token: &'a str) -> Option<(&'a str, &'a str)> {
    let (body, mac) = token.rsplit_once('.')?;
    hmac::verify(key, body.as_bytes(), &validate::b64url(mac)?).ok()?;
    body.split_once('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_tokens_do_not_verify() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        let body = format!("{}.{}", to_b64url(b"1:alice"), to_b64url(b"9999999999"));
        let token = format!("{body}.{}", to_b64url(hmac::sign(&key, body.as_bytes()).as_ref()));
        assert_eq!(
            verified_parts(&key, &token),
            Some((&body[..body.find('.').unwrap()], &body[body.find('.').unwrap() + 1..]))
        );
        let forged = token.replacen(&to_b64url(b"1:alice"), &to_b64url(b"1:mallory"), 1);
        assert_eq!(verified_parts(&key, &forged), None);
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"other");
        assert_eq!(verified_parts(&other, &token), None);
        assert_eq!(verified_parts(&key, "garbage"), None);
        assert_eq!(verified_parts(&key, "a.b.!!"), None);
    }
}
