//! Webhook endpoints and event emission. Events are queued after the change they describe
//! commits; the hook outbox then delivers them durably with retries.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Service, new_id};
use crate::clock::now_ms;
use crate::error::{FieldError, ServiceError};
use crate::webhooks::{EVENT_TYPES, Webhook, WebhookPatch};

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
}
