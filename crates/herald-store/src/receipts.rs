//! The one implementation of [`ReceiptStore`] for both engines.

use async_trait::async_trait;
use herald_core::clock::Millis;
use herald_core::receipts::{ReceiptEvent, ReceiptRecorded, ReceiptStore};
use herald_core::store::StoreResult;

use crate::{PgStore, SqliteStore, db_err};

macro_rules! impl_receipts {
    ($store:ty) => {
        #[async_trait]
        impl ReceiptStore for $store {
            async fn record_receipt(
                &self,
                delivery_id: i64,
                event: ReceiptEvent,
                action: Option<&str>,
                at: Millis,
            ) -> StoreResult<Option<ReceiptRecorded>> {
                // One statement per event: the first report wins, a repeat only reads.
                let sql = match event {
                    ReceiptEvent::Displayed => {
                        "UPDATE deliveries SET displayed_at = COALESCE(displayed_at, $2) WHERE id = $1 \
                         RETURNING account_id, notification_id, subscription_id, channel_id, displayed_at = $2"
                    }
                    ReceiptEvent::Clicked => {
                        "UPDATE deliveries SET clicked_at = COALESCE(clicked_at, $2), \
                         clicked_action = CASE WHEN clicked_at IS NULL THEN $3 ELSE clicked_action END, \
                         displayed_at = COALESCE(displayed_at, $2) WHERE id = $1 \
                         RETURNING account_id, notification_id, subscription_id, channel_id, clicked_at = $2"
                    }
                    ReceiptEvent::Dismissed => {
                        "UPDATE deliveries SET dismissed_at = COALESCE(dismissed_at, $2), \
                         displayed_at = COALESCE(displayed_at, $2) WHERE id = $1 \
                         RETURNING account_id, notification_id, subscription_id, channel_id, dismissed_at = $2"
                    }
                };
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let mut query = sqlx::query_as(sql).bind(delivery_id).bind(at);
                if event == ReceiptEvent::Clicked {
                    // Only the click statement has the action's placeholder.
                    query = query.bind(action);
                }
                let row: Option<(i64, String, i64, String, bool)> =
                    query.fetch_optional(&mut *tx).await.map_err(db_err)?;
                let recorded = row.map(|(account_id, notification_id, subscription_id, channel_id, first)| ReceiptRecorded {
                    account_id,
                    notification_id,
                    subscription_id,
                    channel_id,
                    first,
                });
                // The first report is announced, in the transaction that records it.
                if let Some(r) = recorded.as_ref().filter(|r| r.first) {
                    let data = herald_core::events::ReceiptReported {
                        notification_id: r.notification_id.clone(),
                        delivery_id,
                        subscription_id: r.subscription_id,
                        channel_id: r.channel_id.clone(),
                        event,
                        action: action.map(str::to_string),
                        at: herald_core::events::at(at),
                    };
                    if let Some(e) = herald_core::events::receipt(r.account_id, data) {
                        Self::enqueue_in(&mut tx, &[e]).await?;
                    }
                }
                tx.commit().await.map_err(db_err)?;
                Ok(recorded)
            }

            async fn receipt_counts(&self, notification_id: &str) -> StoreResult<(i64, i64)> {
                sqlx::query_as(
                    "SELECT COUNT(displayed_at), COUNT(clicked_at) FROM deliveries WHERE notification_id = $1",
                )
                .bind(notification_id)
                .fetch_one(self.reader())
                .await
                .map_err(db_err)
            }

            async fn subscription_account(&self, subscription_id: i64) -> StoreResult<Option<i64>> {
                sqlx::query_scalar("SELECT account_id FROM subscriptions WHERE id = $1")
                    .bind(subscription_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_err)
            }

            async fn mark_replaced(&self, subscription_id: i64, at: Millis) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let done = sqlx::query(
                    "UPDATE subscriptions SET status = 'inactive', inactive_reason = 'replaced', updated_at = $2 \
                     WHERE id = $1 AND (status = 'active' OR inactive_reason IS NULL OR inactive_reason <> 'replaced')",
                )
                .bind(subscription_id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let replaced = done.rows_affected() == 1;
                if replaced {
                    let change = (subscription_id, herald_core::events::EventType::SubscriptionDeactivated, Some("replaced"));
                    Self::announce_in(&mut tx, &[change]).await?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(replaced)
            }
        }
    };
}

impl_receipts!(SqliteStore);
impl_receipts!(PgStore);
