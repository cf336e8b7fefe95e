//! Row types of the delivery tables and their conversion into the domain model.

use herald_core::StoreError;
use herald_core::model::*;
use herald_core::outbox::Claimed;

use crate::rows::{json, parse};

#[derive(sqlx::FromRow)]
pub(crate) struct NotificationRow {
    id: String,
    account_id: i64,
    target: String,
    content: String,
    options: String,
    channel_filter: Option<String>,
    idempotency_key: Option<String>,
    fanout_status: String,
    fanout_cursor: i64,
    fanout_count: i64,
    created_at: i64,
    send_at: i64,
    expires_at: i64,
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;
    fn try_from(r: NotificationRow) -> Result<Self, StoreError> {
        Ok(Notification {
            id: r.id,
            account_id: r.account_id,
            target: json(&r.target)?,
            content: decode(&r.content)?,
            options: decode(&r.options)?,
            channel_filter: r.channel_filter.as_deref().map(decode).transpose()?,
            idempotency_key: r.idempotency_key,
            fanout_status: parse(&r.fanout_status, FanoutStatus::parse)?,
            fanout_cursor: r.fanout_cursor,
            fanout_count: r.fanout_count,
            created_at: r.created_at,
            send_at: r.send_at,
            expires_at: r.expires_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: i64,
    notification_id: String,
    subscription_id: i64,
    channel_id: String,
    channel_type: String,
    message_id: String,
    status: String,
    attempts: i64,
    provider_status: Option<i64>,
    provider_reason: Option<String>,
    provider_message_id: Option<String>,
    next_attempt_at: i64,
    created_at: i64,
    updated_at: i64,
    delivered_at: Option<i64>,
    displayed_at: Option<i64>,
    clicked_at: Option<i64>,
    clicked_action: Option<String>,
    dismissed_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            id: r.id,
            notification_id: r.notification_id,
            subscription_id: r.subscription_id,
            channel_id: r.channel_id,
            channel_type: parse(&r.channel_type, ChannelType::parse)?,
            message_id: r.message_id,
            status: parse(&r.status, DeliveryStatus::parse)?,
            attempts: r.attempts,
            provider_status: r.provider_status,
            provider_reason: r.provider_reason,
            provider_message_id: r.provider_message_id,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            delivered_at: r.delivered_at,
            displayed_at: r.displayed_at,
            clicked_at: r.clicked_at,
            clicked_action: r.clicked_action,
            dismissed_at: r.dismissed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedRow {
    id: i64,
    message_id: String,
    notification_id: String,
    account_id: i64,
    attempts: i64,
    channel_id: String,
    subscription_id: i64,
    identifier: String,
    settings: String,
    kind: String,
    environment: String,
    active: bool,
    content: String,
    options: String,
    expires_at: i64,
    send_at: i64,
}

impl ClaimedRow {
    pub(crate) fn into_claimed(self, lease: &str) -> Claimed {
        Claimed {
            lease: lease.to_string(),
            delivery_id: self.id,
            message_id: self.message_id,
            notification_id: self.notification_id,
            account_id: self.account_id,
            attempts: self.attempts,
            channel_id: self.channel_id,
            subscription_id: self.subscription_id,
            identifier: self.identifier,
            settings: self.settings,
            kind: self.kind,
            environment: self.environment,
            subscription_active: self.active,
            content: self.content,
            options: self.options,
            expires_at: self.expires_at,
            due_at: self.send_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InboxRow {
    id: i64,
    notification_id: String,
    content: String,
    created_at: i64,
    read_at: Option<i64>,
}

impl TryFrom<InboxRow> for InboxItem {
    type Error = StoreError;
    fn try_from(r: InboxRow) -> Result<Self, StoreError> {
        Ok(InboxItem {
            id: r.id,
            notification_id: r.notification_id,
            content: decode(&r.content)?,
            created_at: r.created_at,
            read_at: r.read_at,
        })
    }
}
