//! One event model. Every event type has one payload type and one builder here, and every event
//! is written to the hook outbox *in the same transaction* as the change it describes (the store
//! calls these builders inside its write transactions), so a committed change always has its
//! event and an uncommitted one never does. Webhooks and bnotify channel callbacks are both fed
//! from it.

use serde::Serialize;
use serde_json::json;

use crate::clock::{Millis, now_ms, rfc3339};
use crate::model::{DeliveryStatus, Subscription};
use crate::outbox::DeliveryResult;
use crate::receipts::ReceiptEvent;
use crate::service::SubscriptionView;
use crate::webhooks::Event;

/// Every event type, as webhooks subscribe to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    #[serde(rename = "subscription.created")]
    SubscriptionCreated,
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated,
    #[serde(rename = "subscription.deactivated")]
    SubscriptionDeactivated,
    #[serde(rename = "subscription.deleted")]
    SubscriptionDeleted,
    #[serde(rename = "notification.delivered")]
    NotificationDelivered,
    #[serde(rename = "notification.failed")]
    NotificationFailed,
    #[serde(rename = "notification.displayed")]
    NotificationDisplayed,
    #[serde(rename = "notification.clicked")]
    NotificationClicked,
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
}

impl EventType {
    /// All of them, in documentation order.
    pub const ALL: &'static [EventType] = &[
        EventType::SubscriptionCreated,
        EventType::SubscriptionUpdated,
        EventType::SubscriptionDeactivated,
        EventType::SubscriptionDeleted,
        EventType::NotificationDelivered,
        EventType::NotificationFailed,
        EventType::NotificationDisplayed,
        EventType::NotificationClicked,
        EventType::WebhookDisabled,
    ];

    /// The wire name (`subscription.created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SubscriptionCreated => "subscription.created",
            EventType::SubscriptionUpdated => "subscription.updated",
            EventType::SubscriptionDeactivated => "subscription.deactivated",
            EventType::SubscriptionDeleted => "subscription.deleted",
            EventType::NotificationDelivered => "notification.delivered",
            EventType::NotificationFailed => "notification.failed",
            EventType::NotificationDisplayed => "notification.displayed",
            EventType::NotificationClicked => "notification.clicked",
            EventType::WebhookDisabled => "webhook.disabled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

/// `subscription.*`: the subscription as the native API shows it, and why it changed.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionChanged {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// `moved`, `replaced`, `merged`, `api`, `channel_deleted`, a provider's answer; `null` when
    /// the change needs no reason (created, updated, deleted).
    pub reason: Option<String>,
}

/// `notification.delivered` / `notification.failed`: one delivery's final outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryFinished {
    pub notification_id: String,
    pub delivery_id: i64,
    pub subscription_id: i64,
    pub channel_id: String,
    pub status: DeliveryStatus,
    pub provider_status: Option<u16>,
    pub reason: Option<String>,
}

/// `notification.displayed` / `notification.clicked`: what a device reported.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptReported {
    pub notification_id: String,
    pub delivery_id: i64,
    pub subscription_id: i64,
    pub channel_id: String,
    pub event: ReceiptEvent,
    pub action: Option<String>,
    pub at: String,
}

/// `webhook.disabled`: an endpoint failing for five days was switched off.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookDisabled {
    pub id: String,
    pub url: String,
    pub reason: Option<String>,
}

fn envelope<T: Serialize>(account_id: i64, event_type: EventType, at: Millis, data: &T) -> Event {
    Event::new(account_id, event_type, at, serde_json::to_value(data).expect("event payloads serialise"))
}

/// A subscription event, with the bnotify channel callback for subscribes and unsubscribes
/// (except a prune by the push service, which bnotify does not count as the user unsubscribing).
pub fn subscription(s: &Subscription, event_type: EventType, reason: Option<&str>) -> Event {
    let now = now_ms();
    let data = SubscriptionChanged { subscription: SubscriptionView::from(s), reason: reason.map(str::to_string) };
    let mut event = envelope(s.account_id, event_type, now, &data);
    let pruned = event_type == EventType::SubscriptionDeactivated && reason.is_some_and(is_provider_reason);
    let callback = match event_type {
        EventType::SubscriptionCreated => Some(("subscription", "User subscribed to the channel")),
        EventType::SubscriptionDeleted | EventType::SubscriptionDeactivated if !pruned => {
            Some(("unsubcription", "User unsubscribed from the channel"))
        }
        _ => None,
    };
    // bnotify's callback body, in its own spelling ("unsubcription") and Unix seconds.
    event.callback = callback.map(|(kind, message)| {
        let body = json!({"type": kind, "message": message, "channelId": s.channel_id, "iuid": s.external_id, "date": now / 1000});
        (s.channel_id.clone(), body)
    });
    event
}

/// Herald's own reasons; anything else is a push service's answer (a prune).
fn is_provider_reason(reason: &str) -> bool {
    !matches!(reason, "moved" | "replaced" | "merged" | "api" | "channel_deleted")
}

/// The event of a delivery's final result (`None` while it is still being retried).
pub fn delivery(r: &DeliveryResult) -> Option<Event> {
    let event_type = match r.status {
        DeliveryStatus::Delivered => EventType::NotificationDelivered,
        s if s.is_final() => EventType::NotificationFailed,
        _ => return None,
    };
    let data = DeliveryFinished {
        notification_id: r.notification_id.clone(),
        delivery_id: r.delivery_id,
        subscription_id: r.subscription_id,
        channel_id: r.channel_id.clone(),
        status: r.status,
        provider_status: r.provider_status,
        reason: r.provider_reason.clone(),
    };
    Some(envelope(r.account_id, event_type, now_ms(), &data))
}

/// The event of a receipt's first report (`None` for `dismissed`, which no webhook announces).
pub fn receipt(account_id: i64, data: ReceiptReported) -> Option<Event> {
    let event_type = match data.event {
        ReceiptEvent::Displayed => EventType::NotificationDisplayed,
        ReceiptEvent::Clicked => EventType::NotificationClicked,
        ReceiptEvent::Dismissed => return None,
    };
    Some(envelope(account_id, event_type, now_ms(), &data))
}

/// The event of a webhook switched off.
pub fn webhook_disabled(account_id: i64, data: WebhookDisabled) -> Event {
    envelope(account_id, EventType::WebhookDisabled, now_ms(), &data)
}

/// A receipt's time as events show it.
pub fn at(ms: Millis) -> String {
    rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_is_one_webhooks_may_subscribe_to() {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, crate::webhooks::EVENT_TYPES);
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}
