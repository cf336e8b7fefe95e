//! Pairing: short-lived codes that subscribe one browser or device to one (channel, user) when
//! redeemed — handed out as a QR code and a deep link — and the per-channel view of who is
//! subscribed that channel-key surfaces (bnotify) work with: a user's subscription in one
//! channel, the channel's subscriptions, and a send to a user through one channel.

use serde_json::json;

use super::{ChannelView, MAX_LIMIT, MAX_TTL, Registration, SendRequest, SendTarget, Service};
use crate::clock::{Millis, now_ms};
use crate::delivery::{Content, Options};
use crate::error::{FieldError, ServiceError};
use crate::keys;
use crate::model::{AccountStatus, Subscription, SubscriptionStatus};
use crate::pairing_store::{NewPairingCode, PairingCode};
use crate::store::{SubscriptionFilter, Upserted};
use crate::validate;

/// Lifetime of a code when the caller names none: one hour.
pub const DEFAULT_TTL_SECONDS: i64 = 3600;
/// Shortest lifetime a caller may ask for.
pub const MIN_TTL_SECONDS: i64 = 60;
/// Longest lifetime a caller may ask for: one week.
pub const MAX_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// How long a used or expired code is kept (answering 410) before it is purged (then 404).
const KEEP_AFTER_EXPIRY_MS: Millis = 7 * 24 * 3600 * 1000;
/// Random bytes in a code: 128 bits, 22 base64url characters.
const CODE_BYTES: usize = 16;
/// Most subscriptions [`Service::channel_subscriptions`] returns.
pub const MAX_CHANNEL_LIST: usize = 10_000;

/// A freshly minted code. The code itself is shown here once; Herald keeps only its hash.
#[derive(Debug, Clone)]
pub struct PairingCodeCreated {
    pub code: String,
    pub channel_id: String,
    pub user: String,
    pub expires_at: Millis,
}

/// What a valid code subscribes to, for the page that redeems it.
#[derive(Debug, Clone)]
pub struct PairingInfo {
    pub account_name: String,
    /// The channel, public configuration only (its VAPID public key for Web Push).
    pub channel: ChannelView,
    pub user: String,
    pub expires_at: Millis,
}

/// A send to one user through one channel.
#[derive(Debug, Clone)]
pub struct ChannelSend {
    pub notification_id: String,
    /// The user's subscription in the channel the send went through.
    pub subscription: Subscription,
    pub created_at: Millis,
    /// When the user read it in their inbox; `None` until then.
    pub read_at: Option<Millis>,
}

fn code_hash(code: &str) -> Option<Vec<u8>> {
    // Anything that cannot be a minted code is unknown without a database round trip.
    let plausible =
        (1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    plausible.then(|| keys::hash(code))
}

fn not_found() -> ServiceError {
    // The code is a bearer secret: never echo it back.
    ServiceError::not_found("pairing_code", "")
}

/// 410 with the reason a known code is no longer usable, else the code itself.
fn usable(code: PairingCode, now: Millis) -> Result<PairingCode, ServiceError> {
    if code.redeemed_at.is_some() {
        Err(ServiceError::Gone("this pairing code was already used".into()))
    } else if code.expires_at <= now {
        Err(ServiceError::Gone("this pairing code has expired".into()))
    } else {
        Ok(code)
    }
}

impl Service {
    /// Mints a pairing code for (channel, user), valid for `ttl_seconds` (default one hour).
    #[tracing::instrument(skip_all, fields(account = account_id, channel = channel_id))]
    pub async fn create_pairing_code(
        &self,
        account_id: i64,
        channel_id: &str,
        external_id: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<PairingCodeCreated, ServiceError> {
        let mut errors = Vec::new();
        if let Err(e) = validate::external_id("user", external_id) {
            errors.push(e);
        }
        let ttl = ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
            errors.push(FieldError::new(
                "ttl_seconds",
                "out_of_range",
                format!("ttl_seconds must be {MIN_TTL_SECONDS}-{MAX_TTL_SECONDS}"),
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let channel = self.channel(account_id, channel_id).await?;
        let code = validate::to_b64url(&keys::random_bytes::<CODE_BYTES>());
        let now = now_ms();
        let row = NewPairingCode {
            hash: keys::hash(&code),
            account_id,
            channel_id: channel.id.clone(),
            external_id: external_id.to_string(),
            created_at: now,
            expires_at: now + ttl * 1000,
        };
        self.store.insert_pairing_code(&row, now - KEEP_AFTER_EXPIRY_MS).await?;
        Ok(PairingCodeCreated { code, channel_id: channel.id, user: row.external_id, expires_at: row.expires_at })
    }

    /// What a usable code subscribes to: 404 when unknown, 410 when used, expired or its
    /// channel is gone, 403 when its account is paused.
    pub async fn pairing_info(&self, code: &str) -> Result<PairingInfo, ServiceError> {
        let hash = code_hash(code).ok_or_else(not_found)?;
        let pc = self.store.get_pairing_code(&hash).await?.ok_or_else(not_found)?;
        let pc = usable(pc, now_ms())?;
        let account = self.store.get_account(pc.account_id).await?.ok_or_else(not_found)?;
        if account.status != AccountStatus::Active {
            return Err(ServiceError::forbidden("account is paused", None));
        }
        let channel = self
            .store
            .get_channel(pc.account_id, &pc.channel_id)
            .await?
            .ok_or_else(|| ServiceError::Gone("the channel of this pairing code was deleted".into()))?;
        Ok(PairingInfo {
            account_name: account.name,
            channel: ChannelView::from(&channel),
            user: pc.external_id,
            expires_at: pc.expires_at,
        })
    }

    /// Redeems a code once: registers the subscription for the code's user on the code's
    /// channel through [`Service::register_subscription`]. Of concurrent redemptions exactly one
    /// wins; the others get 410. A redemption refused by validation leaves the code usable.
    #[tracing::instrument(skip_all)]
    pub async fn redeem_pairing_code(
        &self,
        code: &str,
        mut reg: Registration,
    ) -> Result<Upserted<Subscription>, ServiceError> {
        let hash = code_hash(code).ok_or_else(not_found)?;
        let now = now_ms();
        let Some(pc) = self.store.claim_pairing_code(&hash, now).await? else {
            let pc = self.store.get_pairing_code(&hash).await?.ok_or_else(not_found)?;
            return Err(usable(pc, now)
                .err()
                .unwrap_or_else(|| ServiceError::Gone("this pairing code was already used".into())));
        };
        if reg.channel_id.as_ref().is_some_and(|c| *c != pc.channel_id) {
            self.store.release_pairing_code(&hash, now).await?;
            return Err(ServiceError::invalid("channel_id", "invalid", "the pairing code decides the channel"));
        }
        reg.channel_id = Some(pc.channel_id.clone());
        let registered = match self.store.get_account(pc.account_id).await? {
            Some(a) if a.status == AccountStatus::Active => {
                // Whoever holds the code is a client: its topics are confined like any client's.
                reg.client_policy = Some(a.policy);
                self.register_subscription(pc.account_id, &pc.external_id, reg).await
            }
            _ => Err(ServiceError::forbidden("account is paused", None)),
        };
        match registered {
            Ok(up) => {
                self.store.complete_pairing_code(&hash, up.value.id).await?;
                Ok(up)
            }
            Err(e) => {
                self.store.release_pairing_code(&hash, now).await?;
                Err(e)
            }
        }
    }

    /// The active subscriptions of a channel, oldest first, at most [`MAX_CHANNEL_LIST`].
    pub async fn channel_subscriptions(
        &self,
        account_id: i64,
        channel_id: &str,
    ) -> Result<Vec<Subscription>, ServiceError> {
        self.channel(account_id, channel_id).await?;
        let mut all = Vec::new();
        let mut after_id = None;
        loop {
            let filter = SubscriptionFilter {
                account_id,
                channel_id: Some(channel_id.to_string()),
                status: Some(SubscriptionStatus::Active),
                after_id,
                limit: MAX_LIMIT,
                ..Default::default()
            };
            let page = self.store.list_subscriptions(&filter).await?;
            let last = page.last().map(|s| s.id);
            let full = page.len() == MAX_LIMIT as usize;
            all.extend(page);
            if !full || all.len() >= MAX_CHANNEL_LIST {
                all.truncate(MAX_CHANNEL_LIST);
                return Ok(all);
            }
            after_id = last;
        }
    }

    /// A user's subscription in a channel: the most recently seen active one when the user has
    /// several devices there; 404 `subscription` when none.
    pub async fn channel_subscription(
        &self,
        account_id: i64,
        channel_id: &str,
        external_id: &str,
    ) -> Result<Subscription, ServiceError> {
        self.channel(account_id, channel_id).await?;
        let filter = SubscriptionFilter {
            account_id,
            external_id: Some(external_id.to_string()),
            channel_id: Some(channel_id.to_string()),
            status: Some(SubscriptionStatus::Active),
            limit: MAX_LIMIT,
            ..Default::default()
        };
        self.store
            .list_subscriptions(&filter)
            .await?
            .into_iter()
            .max_by_key(|s| (s.last_seen_at, s.id))
            .ok_or_else(|| ServiceError::not_found("subscription", external_id))
    }

    /// Sends to one user through one channel only: 404 `subscription` when the user has no
    /// active subscription there. Goes through [`Service::send_notification`] like every send.
    #[tracing::instrument(skip_all, fields(account = account_id, channel = channel_id))]
    pub async fn send_to_channel_user(
        &self,
        account_id: i64,
        channel_id: &str,
        external_id: &str,
        content: Content,
    ) -> Result<ChannelSend, ServiceError> {
        let subscription = self.channel_subscription(account_id, channel_id, external_id).await?;
        let fingerprint = json!({"user": external_id, "channel_id": channel_id, "content": content}).to_string();
        let req = SendRequest {
            to: SendTarget::User(external_id.to_string()),
            content,
            options: Options { ttl: MAX_TTL, ..Default::default() },
            send_at: None,
            channels: Some(vec![channel_id.to_string()]),
            idempotency_key: None,
            request_fingerprint: fingerprint,
        };
        let accepted = self.send_notification(account_id, req).await?;
        let id = accepted.id.as_str();
        let n = self
            .store
            .get_notification(account_id, id)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("notification {id} vanished after the send")))?;
        Ok(ChannelSend { notification_id: n.id, subscription, created_at: n.created_at, read_at: None })
    }
}
