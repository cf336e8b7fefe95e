//! Receipts reported by devices, and the signed tokens (receipts, renewals) Herald hands out.

use super::Service;
use crate::clock::now_ms;
use crate::error::{FieldError, ServiceError};
use crate::keys;
use crate::receipts::ReceiptEvent;
use crate::tokens::{self, Purpose, TokenKey};

/// Longest `action` a click may report (service worker action ids are short names).
const MAX_ACTION: usize = 64;

impl Service {
    /// The key receipt and renewal tokens are signed with: a per-deployment secret, made on
    /// first use and then read once per process.
    pub async fn token_key(&self) -> Result<TokenKey, ServiceError> {
        let store = self.store.clone();
        let key = self
            .tokens
            .get_or_try_init(|| async move {
                let secret = store.deployment_secret(tokens::SECRET_NAME, &keys::random_bytes::<32>()).await?;
                Ok::<_, ServiceError>(TokenKey::new(&secret))
            })
            .await?;
        Ok(key.clone())
    }

    /// Records what a device reports about a push. The token is the only credential: it names
    /// one delivery, so a forged one, or one of another delivery, is refused before anything
    /// is stored. Repeats are harmless (the first report wins); the first `displayed` and
    /// `clicked` are announced to webhooks.
    #[tracing::instrument(skip_all, fields(event = event.as_str()))]
    pub async fn record_receipt(
        &self,
        token: &str,
        event: ReceiptEvent,
        action: Option<&str>,
    ) -> Result<(), ServiceError> {
        if let Some(a) = action
            && (a.chars().count() > MAX_ACTION || a.chars().any(char::is_control))
        {
            return Err(ServiceError::Validation(vec![FieldError::new(
                "action",
                "invalid",
                format!("action must be at most {MAX_ACTION} characters without control characters"),
            )]));
        }
        let action = action.filter(|a| !a.is_empty() && event == ReceiptEvent::Clicked);
        let key = self.token_key().await?;
        let delivery_id = key
            .verify(Purpose::Receipt, token)
            .ok_or_else(|| ServiceError::Unauthenticated("receipt token is not valid".into()))?;
        let now = now_ms();
        let recorded = self
            .store
            .record_receipt(delivery_id, event, action, now)
            .await?
            .ok_or_else(|| ServiceError::not_found("delivery", delivery_id))?;
        if recorded.first {
            // Its event was queued with it.
            self.hooks_wake.notify_one();
        }
        Ok(())
    }
}

impl Service {
    /// The renewal token of a subscription: what lets its browser's service worker replace it
    /// on `pushsubscriptionchange` without a user token.
    pub async fn renewal_token(&self, subscription_id: i64) -> Result<String, ServiceError> {
        Ok(self.token_key().await?.sign(Purpose::Renewal, subscription_id))
    }

    /// Replaces the subscription a renewal token names by a new one for the same user, channel,
    /// kind and topics (the browser's new push subscription, `settings`); the old one becomes
    /// inactive with reason `replaced`. A token works until its subscription is replaced or
    /// deleted, and only for that subscription.
    #[tracing::instrument(skip_all)]
    pub async fn renew_subscription(
        &self,
        token: &str,
        settings: serde_json::Value,
    ) -> Result<crate::store::Upserted<crate::model::Subscription>, ServiceError> {
        let key = self.token_key().await?;
        let id = key
            .verify(Purpose::Renewal, token)
            .ok_or_else(|| ServiceError::Unauthenticated("renewal token is not valid".into()))?;
        let gone = || ServiceError::Gone("the subscription this token renews no longer exists".into());
        let account_id = self.store.subscription_account(id).await?.ok_or_else(gone)?;
        let old = self.store.get_subscription(account_id, id).await?.ok_or_else(gone)?;
        if old.inactive_reason.as_deref() == Some("replaced") {
            return Err(ServiceError::Gone("this subscription was already renewed".into()));
        }
        let account = self.store.get_account(account_id).await?.ok_or_else(gone)?;
        if account.status != crate::model::AccountStatus::Active {
            return Err(ServiceError::forbidden("account is paused", None));
        }
        let reg = super::Registration {
            channel_id: Some(old.channel_id.clone()),
            settings,
            kind: Some(old.kind),
            environment: Some(old.environment),
            // The topics were the subscription's already; the new browser subscription keeps them.
            topics: Some(old.topics.clone()),
            ..Default::default()
        };
        let up = self.register_subscription(account_id, &old.external_id, reg).await?;
        if up.value.id != old.id && self.store.mark_replaced(old.id, now_ms()).await? {
            self.hooks_wake.notify_one();
        }
        Ok(up)
    }
}
