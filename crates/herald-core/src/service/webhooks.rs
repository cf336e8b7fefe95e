//! Webhook endpoints and event emission. Events are queued after the change they describe
//! commits; the hook outbox then delivers them durably with retries.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Service, new_id};
use crate::clock::now_ms;
use crate::error::{FieldError, ServiceError};
use crate::model::Subscription;
use crate::service::SubscriptionView;
use crate::webhooks::{EVENT_TYPES, Event, Webhook, WebhookPatch};

/// A webhook with its signing secret, shown only when created or rotated.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

/// A webhook create or update request.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub rotate_secret: bool,
}

impl Service {
    fn validate_webhook(&self, input: &WebhookInput, creating: bool) -> Result<(), ServiceError> {
        let mut errors = Vec::new();
        match &input.url {
            None if creating => errors.push(FieldError::required("url")),
            Some(url) if url.len() > 2048 => errors.push(FieldError::too_long("url", 2048)),
            Some(url) => {
                if let Err(reason) = self.endpoints.check_provider_base(url) {
                    errors.push(FieldError::new("url", "invalid", format!("url {reason}")));
                }
            }
            None => {}
        }
        match &input.events {
            None if creating => errors.push(FieldError::required("events")),
            Some(events) if events.is_empty() => errors.push(FieldError::required("events")),
            Some(events) => {
                for (i, e) in events.iter().enumerate() {
                    if !EVENT_TYPES.contains(&e.as_str()) {
                        errors.push(FieldError::new(
                            format!("events[{i}]"),
                            "invalid",
                            format!("unknown event; one of {}", EVENT_TYPES.join(", ")),
                        ));
                    }
                }
            }
            None => {}
        }
        if errors.is_empty() { Ok(()) } else { Err(ServiceError::Validation(errors)) }
    }

    /// Registers a webhook endpoint; the secret is in this answer only.
    pub async fn create_webhook(
        &self,
        account_id: i64,
        input: WebhookInput,
        secret: String,
    ) -> Result<WebhookWithSecret, ServiceError> {
        self.validate_webhook(&input, true)?;
        let now = now_ms();
        let webhook = Webhook {
            id: new_id(),
            account_id,
            url: input.url.unwrap_or_default(),
            events: input.events.unwrap_or_default(),
            secret: secret.clone(),
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_webhook(&webhook).await?;
        Ok(WebhookWithSecret { webhook, secret })
    }

    /// The account's webhooks.
    pub async fn list_webhooks(&self, account_id: i64) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.list_webhooks(account_id).await?)
    }

    /// One webhook.
    pub async fn get_webhook(&self, account_id: i64, id: &str) -> Result<Webhook, ServiceError> {
        self.store.get_webhook(account_id, id).await?.ok_or_else(|| ServiceError::not_found("webhook", id))
    }

    /// Changes a webhook; `new_secret` is used when rotating. Re-enabling clears the failure streak.
    pub async fn update_webhook(
        &self,
        account_id: i64,
        id: &str,
        input: WebhookInput,
        new_secret: String,
    ) -> Result<Value, ServiceError> {
        self.validate_webhook(&input, false)?;
        let secret = input.rotate_secret.then_some(new_secret);
        let patch =
            WebhookPatch { url: input.url, events: input.events, enabled: input.enabled, secret: secret.clone() };
        let webhook = self
            .store
            .update_webhook(account_id, id, &patch)
            .await?
            .ok_or_else(|| ServiceError::not_found("webhook", id))?;
        let mut view = serde_json::to_value(&webhook).expect("serialisable");
        if let Some(secret) = secret {
            view["secret"] = json!(secret);
        }
        Ok(view)
    }

    /// Deletes a webhook; its queued hooks are dropped when claimed.
    pub async fn delete_webhook(&self, account_id: i64, id: &str) -> Result<(), ServiceError> {
        match self.store.delete_webhook(account_id, id).await? {
            true => Ok(()),
            false => Err(ServiceError::not_found("webhook", id)),
        }
    }

    /// Queues events for delivery. A failure is logged, not returned: the change itself is
    /// committed and must be answered as such.
    pub(crate) async fn emit(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        match self.store.enqueue_events(&events).await {
            Ok(n) if n > 0 => self.hooks_wake.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "queueing webhook events failed"),
        }
    }
}

/// A subscription event, with the bnotify channel callback for subscribes and unsubscribes.
pub(crate) fn subscription_event(s: &Subscription, event_type: &'static str, reason: Option<&str>) -> Event {
    let now = now_ms();
    let mut data = serde_json::to_value(SubscriptionView::from(s)).expect("serialisable");
    if let Some(reason) = reason {
        data["reason"] = json!(reason);
    }
    let mut event = Event::new(s.account_id, event_type, now, data);
    let callback_type = match event_type {
        "subscription.created" => Some(("subscription", "User subscribed to the channel")),
        "subscription.deleted" | "subscription.deactivated" => {
            Some(("unsubcription", "User unsubscribed from the channel"))
        }
        _ => None,
    };
    // bnotify's callback body, in its own spelling ("unsubcription") and Unix seconds.
    event.callback = callback_type.map(|(kind, message)| {
        (s.channel_id.clone(), json!({"type": kind, "message": message, "channelId": s.channel_id, "iuid": s.external_id, "date": now / 1000}))
    });
    event
}
