//! Delivery receipts: what happened to a push on the device (shown, clicked, dismissed), as the
//! service worker or the app reports it with the receipt token its push carried
//! ([`crate::tokens`]). The storage seam is implemented next to [`crate::store::Store`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::store::StoreResult;

/// What a device reports about a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptEvent {
    /// The notification was shown.
    Displayed,
    /// The user clicked it (or one of its actions).
    Clicked,
    /// The user closed it without clicking.
    Dismissed,
}

impl ReceiptEvent {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<ReceiptEvent> {
        match s {
            "displayed" => Some(ReceiptEvent::Displayed),
            "clicked" => Some(ReceiptEvent::Clicked),
            "dismissed" => Some(ReceiptEvent::Dismissed),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptEvent::Displayed => "displayed",
            ReceiptEvent::Clicked => "clicked",
            ReceiptEvent::Dismissed => "dismissed",
        }
    }
}

/// A receipt as stored, with what the delivery it names belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecorded {
    pub account_id: i64,
    pub notification_id: String,
    pub subscription_id: i64,
    pub channel_id: String,
    /// True the first time this event was recorded for the delivery; repeats change nothing.
    pub first: bool,
}

/// Storage for receipts.
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Records `event` on a delivery once (a repeat keeps the first time and action); `None`
    /// when the delivery does not exist.
    async fn record_receipt(
        &self,
        delivery_id: i64,
        event: ReceiptEvent,
        action: Option<&str>,
        at: Millis,
    ) -> StoreResult<Option<ReceiptRecorded>>;

    /// How many of a notification's deliveries were displayed and clicked.
    async fn receipt_counts(&self, notification_id: &str) -> StoreResult<(i64, i64)>;

    /// The account a subscription belongs to (renewal tokens name only the subscription).
    async fn subscription_account(&self, subscription_id: i64) -> StoreResult<Option<i64>>;

    /// Marks a renewed subscription inactive with reason `replaced`; false when it already was.
    async fn mark_replaced(&self, subscription_id: i64, at: Millis) -> StoreResult<bool>;
}
