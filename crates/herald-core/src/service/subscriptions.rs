//! The subscription registry: registration (upsert), listing, changes, topics.

use serde::Serialize;
use serde_json::Value;

use super::{Service, paginate};
use crate::clock::rfc3339;
use crate::error::{FieldError, ServiceError};
use crate::model::{AccountPolicy, ChannelType, Environment, Page, Subscription, SubscriptionKind, SubscriptionStatus};
use crate::store::{NewSubscription, SubscriptionFilter, SubscriptionPatch, Upserted};
use crate::validate;

/// Most topics one subscription may carry.
pub const MAX_TOPICS: usize = 100;

/// A registration request, as every surface hands it over.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub channel_id: Option<String>,
    pub identifier: Option<String>,
    pub settings: Value,
    pub kind: Option<SubscriptionKind>,
    pub environment: Option<Environment>,
    pub topics: Option<Vec<String>>,
    /// Set when a client (not the backend) registers: the account's policy then confines the
    /// topics it may name.
    pub client_policy: Option<AccountPolicy>,
}

/// Refuses topics a client may not add under `policy` (`None`: the backend, never confined).
fn confine_topics<'a>(
    policy: Option<&AccountPolicy>,
    topics: impl IntoIterator<Item = &'a String>,
) -> Result<(), ServiceError> {
    let Some(policy) = policy else { return Ok(()) };
    match topics.into_iter().find(|t| !policy.client_may_add_topic(t)) {
        None => Ok(()),
        Some(topic) => Err(ServiceError::forbidden(
            format!("topic {topic:?} is managed by the account's backend; clients may not subscribe to it"),
            Some("topics:manage"),
        )),
    }
}

/// A subscription as the native API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub id: i64,
    /// The owning user's external id.
    pub user: String,
    pub channel_id: String,
    pub channel_type: ChannelType,
    pub identifier: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub kind: SubscriptionKind,
    pub environment: Environment,
    pub status: SubscriptionStatus,
    /// Why it stopped receiving: `moved`, `channel_deleted`, `api`, or a provider's answer.
    pub inactive_reason: Option<String>,
    pub muted: bool,
    pub topics: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_seen_at: String,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        SubscriptionView {
            id: s.id,
            user: s.external_id.clone(),
            channel_id: s.channel_id.clone(),
            channel_type: s.channel_type,
            identifier: s.identifier.clone(),
            settings: public_settings(&s.settings),
            kind: s.kind,
            environment: s.environment,
            status: s.status,
            inactive_reason: s.inactive_reason.clone(),
            muted: s.muted,
            topics: s.topics.clone(),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            last_seen_at: rfc3339(s.last_seen_at),
        }
    }
}

/// Settings as Herald shows them (answers, lists, webhook payloads): without the Web Push `auth`
/// secret, which with `p256dh` would let anyone who reads it encrypt pushes for that browser.
pub fn public_settings(settings: &Value) -> Value {
    let mut shown = settings.clone();
    if let Some(obj) = shown.as_object_mut() {
        obj.remove("auth");
    }
    shown
}

fn validate_topics(topics: &[String], errors: &mut Vec<FieldError>) {
    if topics.len() > MAX_TOPICS {
        errors.push(FieldError::new("topics", "too_long", format!("at most {MAX_TOPICS} topics")));
    }
    for (i, t) in topics.iter().enumerate() {
        if let Err(e) = validate::topic_name(&format!("topics[{i}]"), t) {
            errors.push(e);
        }
    }
}

impl Service {
    /// Registers a browser or device for a user: insert, or update-and-reactivate when the user
    /// already has this identifier on the channel. Returns whether it was created.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn register_subscription(
        &self,
        account_id: i64,
        external_id: &str,
        reg: Registration,
    ) -> Result<Upserted<Subscription>, ServiceError> {
        let mut errors = Vec::new();
        if let Err(e) = validate::external_id("user", external_id) {
            errors.push(e);
        }
        if !reg.settings.is_object() {
            return Err(ServiceError::invalid("settings", "invalid_type", "settings must be an object"));
        }
        let channel = match &reg.channel_id {
            Some(id) => Some(self.channel(account_id, id).await?),
            None => match validate::implied_channel_type(&reg.settings) {
                Some(t) => Some(self.store.default_channel(account_id, t).await?.ok_or_else(|| {
                    ServiceError::invalid(
                        "channel_id",
                        "required",
                        format!("the account has no {t} channel; create one or pass channel_id"),
                    )
                })?),
                None => {
                    errors.push(FieldError::new(
                        "settings",
                        "invalid",
                        "settings must hold an endpoint (Web Push) or a token (APNs, FCM)",
                    ));
                    None
                }
            },
        };
        let valid = channel.as_ref().and_then(|c| {
            validate::settings(c.channel_type, &reg.settings, self.endpoints.as_ref())
                .map_err(|e| errors.extend(e))
                .ok()
        });
        if let Some(identifier) = &reg.identifier
            && validate::required_str(&mut errors, "identifier", Some(identifier), validate::MAX_FCM_TOKEN).is_some()
            && identifier.chars().any(char::is_control)
        {
            errors.push(FieldError::new("identifier", "invalid", "identifier must not contain control characters"));
        }
        let kind = reg.kind.unwrap_or(SubscriptionKind::Standard);
        if kind == SubscriptionKind::Voip && channel.as_ref().is_some_and(|c| c.channel_type != ChannelType::Apns) {
            errors.push(FieldError::new("kind", "invalid", "voip subscriptions need an apns channel"));
        }
        if let Some(topics) = &reg.topics {
            validate_topics(topics, &mut errors);
        }
        let (Some(channel), Some(valid), true) = (channel, valid, errors.is_empty()) else {
            return Err(ServiceError::Validation(errors));
        };
        confine_topics(reg.client_policy.as_ref(), reg.topics.iter().flatten())?;
        let environment = reg.environment.unwrap_or_else(|| {
            channel
                .config
                .get("environment")
                .and_then(Value::as_str)
                .and_then(Environment::parse)
                .unwrap_or(Environment::Production)
        });
        let new = NewSubscription {
            account_id,
            external_id: external_id.to_string(),
            channel_id: channel.id,
            identifier: reg.identifier.unwrap_or_else(|| valid.natural_identifier.clone()),
            address: valid.natural_identifier,
            settings: valid.settings,
            kind,
            environment,
            topics: reg.topics,
        };
        let upserted = self.store.upsert_subscription(&new).await?;
        // Its events (created or updated, and any device moved or folded) were queued with it.
        self.hooks_wake.notify_one();
        Ok(upserted)
    }

    /// One subscription of the account (of one user when `external_id` is given), else 404.
    pub async fn get_subscription(
        &self,
        account_id: i64,
        id: i64,
        external_id: Option<&str>,
    ) -> Result<Subscription, ServiceError> {
        self.store
            .get_subscription(account_id, id)
            .await?
            .filter(|s| external_id.is_none_or(|u| u == s.external_id))
            .ok_or_else(|| ServiceError::not_found("subscription", id))
    }

    /// A page of subscriptions.
    pub async fn list_subscriptions(&self, mut filter: SubscriptionFilter) -> Result<Page<Subscription>, ServiceError> {
        let limit = filter.limit;
        if let Some(t) = &filter.topic {
            validate::topic_name("topic", t).map_err(|e| ServiceError::Validation(vec![e]))?;
        }
        filter.limit = limit + 1;
        let rows = self.store.list_subscriptions(&filter).await?;
        Ok(paginate(rows, limit, |s| s.id))
    }

    /// Mutes, re-topics, or (de)activates a subscription.
    #[tracing::instrument(skip_all, fields(account = account_id, subscription = id))]
    pub async fn update_subscription(
        &self,
        account_id: i64,
        id: i64,
        external_id: Option<&str>,
        client_policy: Option<&AccountPolicy>,
        patch: SubscriptionPatch,
    ) -> Result<Subscription, ServiceError> {
        let mut errors = Vec::new();
        if let Some(topics) = &patch.topics {
            validate_topics(topics, &mut errors);
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let before = self.get_subscription(account_id, id, external_id).await?;
        // A client may keep the topics its subscription already has (the backend's among them)
        // but add only those the policy lets it.
        confine_topics(client_policy, patch.topics.iter().flatten().filter(|t| !before.topics.contains(t)))?;
        let after = self
            .store
            .update_subscription(account_id, id, &patch)
            .await?
            .ok_or_else(|| ServiceError::not_found("subscription", id))?;
        self.hooks_wake.notify_one();
        Ok(after)
    }

    /// Deletes a subscription.
    #[tracing::instrument(skip_all, fields(account = account_id, subscription = id))]
    pub async fn delete_subscription(
        &self,
        account_id: i64,
        id: i64,
        external_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.get_subscription(account_id, id, external_id).await?;
        match self.store.delete_subscription(account_id, id).await? {
            true => {
                self.hooks_wake.notify_one();
                Ok(())
            }
            false => Err(ServiceError::not_found("subscription", id)),
        }
    }

    /// Adds (`add`) or removes a topic on a subscription; idempotent.
    pub async fn set_topic(
        &self,
        account_id: i64,
        id: i64,
        external_id: Option<&str>,
        client_policy: Option<&AccountPolicy>,
        topic: &str,
        add: bool,
    ) -> Result<Subscription, ServiceError> {
        validate::topic_name("topic", topic).map_err(|e| ServiceError::Validation(vec![e]))?;
        let current = self.get_subscription(account_id, id, external_id).await?;
        if add && !current.topics.iter().any(|t| t == topic) {
            confine_topics(client_policy, [&topic.to_string()])?;
        }
        if add && !current.topics.iter().any(|t| t == topic) && current.topics.len() >= MAX_TOPICS {
            return Err(ServiceError::invalid("topic", "too_long", format!("at most {MAX_TOPICS} topics")));
        }
        if add {
            self.store.add_topic(account_id, id, topic).await?;
        } else {
            self.store.remove_topic(account_id, id, topic).await?;
        }
        self.get_subscription(account_id, id, external_id).await
    }
}

/// Parses an optional status filter.
pub fn parse_status(s: Option<&str>) -> Result<Option<SubscriptionStatus>, ServiceError> {
    s.map(|v| {
        SubscriptionStatus::parse(v).ok_or_else(|| {
            ServiceError::invalid_param("status", format!("status must be one of {}", SubscriptionStatus::expected()))
        })
    })
    .transpose()
}
