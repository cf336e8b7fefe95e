//! The one implementation of [`Outbox`] (notifications, deliveries, fan-out, inbox) for both
//! engines. PostgreSQL claims with `FOR UPDATE SKIP LOCKED` so several nodes never lease the
//! same row; SQLite has a single writer, so the same statement without it is already exclusive.

use async_trait::async_trait;
use herald_core::clock::{Millis, now_ms};
use herald_core::delivery::Outcome;
use herald_core::model::*;
use herald_core::outbox::*;
use herald_core::store::StoreResult;
use serde_json::Value;
use sqlx::QueryBuilder;

use crate::outbox_rows::*;
use crate::rows::SubscriptionRow;
use crate::{PgStore, SqliteStore, db_err};

/// Rows per multi-row INSERT: well under both engines' bind-parameter limits.
const INSERT_CHUNK: usize = 1000;

macro_rules! notification_cols {
    () => {
        "id, account_id, target, content, options, channel_filter, idempotency_key, fanout_status, fanout_cursor, \
         fanout_count, created_at, send_at, expires_at"
    };
}
macro_rules! delivery_cols {
    () => {
        "d.id, d.notification_id, d.subscription_id, d.channel_id, d.channel_type, d.message_id, d.status, d.attempts, \
         d.provider_status, d.provider_reason, d.provider_message_id, d.next_attempt_at, d.created_at, d.updated_at, \
         d.delivered_at, d.displayed_at, d.clicked_at, d.clicked_action, d.dismissed_at"
    };
}

fn target_filter(n: &Notification) -> (Option<String>, Option<String>) {
    let topic = n.target.get("topic").and_then(Value::as_str).map(str::to_string);
    let channel = n.target.get("channel_id").and_then(Value::as_str).map(str::to_string);
    (topic, channel)
}

use herald_core::delivery::passes_channel_filter as passes_filter;

macro_rules! impl_outbox {
    ($store:ty, $conn:ty, $notify:literal, $results_sql:literal) => {
        impl $store {
            /// Tells other nodes there is new work (PostgreSQL `NOTIFY`, delivered at commit).
            async fn announce_work(conn: &mut $conn) -> StoreResult<()> {
                if !$notify.is_empty() {
                    sqlx::query($notify).execute(&mut *conn).await.map_err(db_err)?;
                }
                Ok(())
            }

            async fn insert_delivery_rows(
                conn: &mut $conn,
                notification_id: &str,
                account_id: i64,
                rows: &[NewDelivery],
                send_at: Millis,
            ) -> StoreResult<u64> {
                let now = now_ms();
                let mut added = 0;
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let mut qb = QueryBuilder::new(
                        "INSERT INTO deliveries (notification_id, account_id, subscription_id, user_id, channel_id, \
                         channel_type, message_id, status, attempts, next_attempt_at, created_at, updated_at) ",
                    );
                    qb.push_values(chunk, |mut b, d| {
                        let status = if d.muted { DeliveryStatus::SkippedMuted } else { DeliveryStatus::Queued };
                        b.push_bind(notification_id.to_string())
                            .push_bind(account_id)
                            .push_bind(d.subscription_id)
                            .push_bind(d.user_id)
                            .push_bind(d.channel_id.clone())
                            .push_bind(d.channel_type.as_str())
                            .push_bind(uuid::Uuid::new_v4().to_string())
                            .push_bind(status.as_str())
                            .push_bind(0i64)
                            .push_bind(send_at)
                            .push_bind(now)
                            .push_bind(now);
                    });
                    qb.push(" ON CONFLICT (notification_id, subscription_id) DO NOTHING");
                    added += qb.build().execute(&mut *conn).await.map_err(db_err)?.rows_affected();
                }
                Ok(added)
            }

            async fn insert_inbox_rows(
                conn: &mut $conn,
                notification_id: &str,
                account_id: i64,
                users: &[i64],
                now: Millis,
            ) -> StoreResult<()> {
                for chunk in users.chunks(INSERT_CHUNK) {
                    let mut qb = QueryBuilder::new("INSERT INTO inbox (account_id, user_id, notification_id, created_at) ");
                    qb.push_values(chunk, |mut b, user| {
                        b.push_bind(account_id).push_bind(*user).push_bind(notification_id.to_string()).push_bind(now);
                    });
                    qb.push(" ON CONFLICT (user_id, notification_id) DO NOTHING");
                    qb.build().execute(&mut *conn).await.map_err(db_err)?;
                }
                Ok(())
            }

            /// The consequences of a result beyond its own row: a gone subscription is
            /// deactivated, a configuration error marks the channel unhealthy.
            /// Which of `accounts` have an enabled webhook.
            async fn accounts_with_webhooks(conn: &mut $conn, accounts: &[i64]) -> StoreResult<Vec<i64>> {
                if accounts.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::new("SELECT DISTINCT account_id FROM webhooks WHERE enabled AND account_id IN (");
                let mut list = qb.separated(", ");
                for a in accounts {
                    list.push_bind(*a);
                }
                qb.push(")");
                qb.build_query_scalar().fetch_all(&mut *conn).await.map_err(db_err)
            }

            /// Applies what an outcome means beyond the delivery; true when it deactivated the
            /// subscription (a "gone" answer for a subscription that was still active).
            async fn apply_side_effects(conn: &mut $conn, r: &DeliveryResult, now: Millis) -> StoreResult<bool> {
                match &r.outcome {
                    Some(Outcome::Gone { reason, .. }) => {
                        let done = sqlx::query(
                            "UPDATE subscriptions SET status = 'inactive', inactive_reason = $2, updated_at = $3 \
                             WHERE id = $1 AND status = 'active'",
                        )
                        .bind(r.subscription_id)
                        .bind(reason)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                        return Ok(done.rows_affected() == 1);
                    }
                    Some(Outcome::ChannelError { reason, .. }) => {
                        sqlx::query("UPDATE channels SET health = 'unhealthy', last_error = $2, last_error_at = $3 WHERE id = $1")
                            .bind(&r.channel_id)
                            .bind(reason)
                            .bind(now)
                            .execute(&mut *conn)
                            .await
                            .map_err(db_err)?;
                    }
                    _ => {}
                }
                Ok(false)
            }
        }

        #[async_trait]
        impl Outbox for $store {
            async fn find_idempotent(&self, account_id: i64, key: &str, since: Millis) -> StoreResult<Option<(String, Value)>> {
                let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT request_hash, response FROM notifications WHERE account_id = $1 AND idempotency_key = $2 \
                     AND created_at >= $3",
                )
                .bind(account_id)
                .bind(key)
                .bind(since)
                .fetch_optional(self.writer())
                .await
                .map_err(db_err)?;
                row.map(|(hash, response)| Ok((hash.unwrap_or_default(), crate::rows::json(&response.unwrap_or_default())?)))
                    .transpose()
            }

            async fn insert_notification(
                &self,
                n: &NewNotification,
                deliveries: &[NewDelivery],
                inbox_users: &[i64],
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                if let Some(key) = &n.idempotency_key {
                    // A key past its window may be used again: release it from the old send.
                    sqlx::query(
                        "UPDATE notifications SET idempotency_key = NULL WHERE account_id = $1 AND idempotency_key = $2 \
                         AND created_at < $3",
                    )
                    .bind(n.account_id)
                    .bind(key)
                    .bind(n.created_at - IDEMPOTENCY_WINDOW_MS)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                let fanout = if n.broadcast { FanoutStatus::Pending } else { FanoutStatus::None };
                sqlx::query(
                    "INSERT INTO notifications (id, account_id, target, content, options, channel_filter, idempotency_key, \
                     request_hash, response, fanout_status, fanout_cursor, fanout_count, created_at, send_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, $14)",
                )
                .bind(&n.id)
                .bind(n.account_id)
                .bind(n.target.to_string())
                .bind(n.content.to_string())
                .bind(n.options.to_string())
                .bind(n.channel_filter.as_ref().map(|f| Value::from(f.clone()).to_string()))
                .bind(n.idempotency_key.as_deref())
                .bind(n.request_hash.as_deref())
                .bind(n.response.to_string())
                .bind(fanout.as_str())
                .bind(deliveries.len() as i64)
                .bind(n.created_at)
                .bind(n.send_at)
                .bind(n.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                Self::insert_delivery_rows(&mut tx, &n.id, n.account_id, deliveries, n.send_at).await?;
                Self::insert_inbox_rows(&mut tx, &n.id, n.account_id, inbox_users, n.created_at).await?;
                Self::announce_work(&mut tx).await?;
                tx.commit().await.map_err(db_err)
            }

            async fn get_notification(&self, account_id: i64, id: &str) -> StoreResult<Option<Notification>> {
                let row: Option<NotificationRow> = sqlx::query_as(concat!(
                    "SELECT ", notification_cols!(), " FROM notifications WHERE account_id = $1 AND id = $2"
                ))
                .bind(account_id)
                .bind(id)
                .fetch_optional(self.reader())
                .await
                .map_err(db_err)?;
                row.map(Notification::try_from).transpose()
            }

            async fn list_notifications(
                &self,
                account_id: i64,
                before: Option<(Millis, String)>,
                limit: u32,
            ) -> StoreResult<Vec<Notification>> {
                let (at, id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
                let rows: Vec<NotificationRow> = sqlx::query_as(concat!(
                    "SELECT ", notification_cols!(), " FROM notifications WHERE account_id = $1 \
                     AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                ))
                .bind(account_id)
                .bind(at)
                .bind(id)
                .bind(limit as i64)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                rows.into_iter().map(Notification::try_from).collect()
            }

            async fn delivery_counts(&self, notification_id: &str) -> StoreResult<Vec<(DeliveryStatus, i64)>> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM deliveries WHERE notification_id = $1 GROUP BY status")
                        .bind(notification_id)
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_err)?;
                rows.into_iter().map(|(s, n)| Ok((crate::rows::parse(&s, DeliveryStatus::parse)?, n))).collect()
            }

            async fn list_deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
                let mut qb = QueryBuilder::new(concat!("SELECT ", delivery_cols!(), " FROM deliveries d WHERE d.account_id = "));
                qb.push_bind(f.account_id).push(" AND d.id > ").push_bind(f.after_id.unwrap_or(0));
                if let Some(n) = &f.notification_id {
                    qb.push(" AND d.notification_id = ").push_bind(n.clone());
                }
                if let Some(s) = f.subscription_id {
                    qb.push(" AND d.subscription_id = ").push_bind(s);
                }
                qb.push(" ORDER BY d.id LIMIT ").push_bind(f.limit as i64);
                let rows: Vec<DeliveryRow> = qb.build_query_as().fetch_all(self.reader()).await.map_err(db_err)?;
                rows.into_iter().map(Delivery::try_from).collect()
            }

            async fn subscriptions_of_users(&self, account_id: i64, external_ids: &[String]) -> StoreResult<Vec<Subscription>> {
                let mut out = Vec::new();
                for chunk in external_ids.chunks(INSERT_CHUNK) {
                    let mut qb = QueryBuilder::new(concat!(
                        subscription_select_by_user!(),
                        "AND c.deleted_at IS NULL AND s.status = 'active' AND u.account_id = "
                    ));
                    qb.push_bind(account_id).push(" AND u.external_id IN (");
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(id.clone());
                    }
                    qb.push(") ORDER BY s.id");
                    let rows: Vec<SubscriptionRow> = qb.build_query_as().fetch_all(self.reader()).await.map_err(db_err)?;
                    for row in rows {
                        out.push(row.into_domain(Vec::new())?);
                    }
                }
                Ok(out)
            }

            async fn pending_fanouts(&self, limit: u32) -> StoreResult<Vec<Notification>> {
                let rows: Vec<NotificationRow> = sqlx::query_as(concat!(
                    "SELECT ", notification_cols!(), " FROM notifications WHERE fanout_status = 'pending' \
                     ORDER BY created_at LIMIT $1"
                ))
                .bind(limit as i64)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                rows.into_iter().map(Notification::try_from).collect()
            }

            async fn fanout_step(&self, n: &Notification, batch: u32) -> StoreResult<FanoutStep> {
                let (topic, channel) = target_filter(n);
                let rows: Vec<(i64, i64, String, String, bool)> = sqlx::query_as(
                    "SELECT s.id, s.user_id, s.channel_id, c.type, s.muted FROM subscriptions s \
                     JOIN channels c ON c.id = s.channel_id \
                     WHERE s.account_id = $1 AND s.status = 'active' AND s.id > $2 AND c.deleted_at IS NULL \
                     AND ($3 IS NULL OR s.channel_id = $3) \
                     AND ($4 IS NULL OR s.id IN (SELECT subscription_id FROM subscription_topics WHERE account_id = $1 AND topic = $4)) \
                     ORDER BY s.id LIMIT $5",
                )
                .bind(n.account_id)
                .bind(n.fanout_cursor)
                .bind(channel.as_deref())
                .bind(topic.as_deref())
                .bind(batch as i64)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                let done = rows.len() < batch as usize;
                let cursor = rows.last().map_or(n.fanout_cursor, |r| r.0);
                let mut deliveries = Vec::with_capacity(rows.len());
                let mut users = Vec::new();
                for (subscription_id, user_id, channel_id, channel_type, muted) in rows {
                    if !passes_filter(&n.channel_filter, &channel_id, &channel_type) {
                        continue;
                    }
                    let channel_type = crate::rows::parse(&channel_type, ChannelType::parse)?;
                    deliveries.push(NewDelivery { subscription_id, user_id, channel_id, channel_type, muted });
                    users.push(user_id);
                }
                users.sort_unstable();
                users.dedup();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let added = Self::insert_delivery_rows(&mut tx, &n.id, n.account_id, &deliveries, n.send_at).await?;
                Self::insert_inbox_rows(&mut tx, &n.id, n.account_id, &users, n.created_at).await?;
                // Optimistic: only the node that still sees the old cursor may advance it.
                let advanced = sqlx::query(
                    "UPDATE notifications SET fanout_cursor = $2, fanout_count = fanout_count + $3, fanout_status = $4 \
                     WHERE id = $1 AND fanout_cursor = $5 AND fanout_status = 'pending'",
                )
                .bind(&n.id)
                .bind(cursor)
                .bind(added as i64)
                .bind(if done { "done" } else { "pending" })
                .bind(n.fanout_cursor)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if advanced.rows_affected() == 0 {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(FanoutStep { added: 0, done: false });
                }
                if added > 0 {
                    Self::announce_work(&mut tx).await?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(FanoutStep { added, done })
            }

            async fn claim_deliveries(&self, lease: &str, now: Millis, lease_ms: i64, limit: u32) -> StoreResult<Vec<Claimed>> {
                let claimed = self.lease_due(crate::lease::Queue::Deliveries, lease, now, lease_ms, limit).await?;
                if claimed == 0 {
                    return Ok(Vec::new());
                }
                let rows: Vec<ClaimedRow> = sqlx::query_as(
                    "SELECT d.id, d.message_id, d.notification_id, d.account_id, d.attempts, d.channel_id, d.subscription_id, \
                     COALESCE(s.identifier, '') AS identifier, COALESCE(s.settings, '{}') AS settings, \
                     COALESCE(s.kind, 'standard') AS kind, COALESCE(s.environment, 'production') AS environment, \
                     COALESCE(s.status = 'active', FALSE) AS active, n.content, n.options, n.expires_at, n.send_at \
                     FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
                     LEFT JOIN subscriptions s ON s.id = d.subscription_id \
                     WHERE d.lease_owner = $1 AND d.status = 'sending' ORDER BY d.id",
                )
                .bind(lease)
                .fetch_all(self.writer())
                .await
                .map_err(db_err)?;
                Ok(rows.into_iter().map(|r| r.into_claimed(lease)).collect())
            }

            async fn record_results(&self, results: &[DeliveryResult]) -> StoreResult<()> {
                if results.is_empty() {
                    return Ok(());
                }
                let now = now_ms();
                let rows: Vec<Value> = results
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.delivery_id,
                            "l": r.lease,
                            "s": r.status.as_str(),
                            "ps": r.provider_status,
                            "pr": r.provider_reason,
                            "pm": r.provider_message_id,
                            "n": r.next_attempt_at,
                        })
                    })
                    .collect();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                // One set-based statement for the whole batch (on SQLite a statement costs a
                // worker-thread round trip: per-row UPDATEs were the engine's bottleneck). Rows
                // whose lease expired and moved on are not updated: the new holder's result wins.
                let applied: Vec<i64> = sqlx::query_scalar($results_sql)
                    .bind(Value::from(rows).to_string())
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let mut pruned = Vec::new();
                for r in results.iter().filter(|r| r.outcome.is_some() && applied.contains(&r.delivery_id)) {
                    if Self::apply_side_effects(&mut tx, r, now).await? {
                        pruned.push(r);
                    }
                }
                // Their events, in this same transaction: a final result and its event commit
                // together or not at all.
                // Most accounts have no webhooks: build events only for those that listen.
                let mut accounts: Vec<i64> = results.iter().filter(|r| r.status.is_final()).map(|r| r.account_id).collect();
                accounts.sort_unstable();
                accounts.dedup();
                let listening = Self::accounts_with_webhooks(&mut tx, &accounts).await?;
                let finals: Vec<_> = results
                    .iter()
                    .filter(|r| listening.contains(&r.account_id) && applied.contains(&r.delivery_id))
                    .filter_map(herald_core::events::delivery)
                    .collect();
                if !finals.is_empty() {
                    Self::enqueue_in(&mut tx, &finals).await?;
                }
                let deactivated: Vec<crate::announce::Change<'_>> = pruned
                    .iter()
                    .filter_map(|r| match &r.outcome {
                        Some(Outcome::Gone { reason, .. }) => {
                            Some((r.subscription_id, herald_core::events::EventType::SubscriptionDeactivated, Some(reason.as_str())))
                        }
                        _ => None,
                    })
                    .collect();
                if !deactivated.is_empty() {
                    Self::announce_in(&mut tx, &deactivated).await?;
                }
                // A channel that delivers again is healthy again.
                let mut healed: Vec<&str> = results
                    .iter()
                    .filter(|r| r.status == DeliveryStatus::Delivered)
                    .map(|r| r.channel_id.as_str())
                    .collect();
                healed.sort_unstable();
                healed.dedup();
                for channel in healed {
                    sqlx::query("UPDATE channels SET health = 'healthy' WHERE id = $1 AND health = 'unhealthy'")
                        .bind(channel)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)
            }

            async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE deliveries SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
                     attempts = attempts - 1 WHERE status = 'sending' AND lease_owner LIKE $1",
                )
                .bind(format!("{owner}:%"))
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                Ok(done.rows_affected())
            }

            async fn work_signals(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
                Self::listen_for_work(self).await
            }

            async fn next_due_at(&self) -> StoreResult<Option<Millis>> {
                let queued: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'queued'")
                    .fetch_one(self.reader())
                    .await
                    .map_err(db_err)?;
                let leased: Option<i64> = sqlx::query_scalar("SELECT MIN(lease_until) FROM deliveries WHERE status = 'sending'")
                    .fetch_one(self.reader())
                    .await
                    .map_err(db_err)?;
                Ok(match (queued, leased) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                })
            }

            async fn list_inbox(
                &self,
                account_id: i64,
                external_id: &str,
                before_id: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<InboxItem>> {
                let rows: Vec<InboxRow> = sqlx::query_as(
                    "SELECT i.id, i.notification_id, n.content, i.created_at, i.read_at FROM inbox i \
                     JOIN users u ON u.id = i.user_id JOIN notifications n ON n.id = i.notification_id \
                     WHERE u.account_id = $1 AND u.external_id = $2 AND ($3 IS NULL OR i.id < $3) \
                     ORDER BY i.id DESC LIMIT $4",
                )
                .bind(account_id)
                .bind(external_id)
                .bind(before_id)
                .bind(limit as i64)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                rows.into_iter().map(InboxItem::try_from).collect()
            }

            async fn mark_read(
                &self,
                account_id: i64,
                external_id: &str,
                notification_id: &str,
                now: Millis,
            ) -> StoreResult<Option<InboxItem>> {
                sqlx::query(
                    "UPDATE inbox SET read_at = COALESCE(read_at, $4) WHERE notification_id = $3 \
                     AND user_id = (SELECT id FROM users WHERE account_id = $1 AND external_id = $2)",
                )
                .bind(account_id)
                .bind(external_id)
                .bind(notification_id)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                let row: Option<InboxRow> = sqlx::query_as(
                    "SELECT i.id, i.notification_id, n.content, i.created_at, i.read_at FROM inbox i \
                     JOIN users u ON u.id = i.user_id JOIN notifications n ON n.id = i.notification_id \
                     WHERE u.account_id = $1 AND u.external_id = $2 AND i.notification_id = $3",
                )
                .bind(account_id)
                .bind(external_id)
                .bind(notification_id)
                .fetch_optional(self.writer())
                .await
                .map_err(db_err)?;
                row.map(InboxItem::try_from).transpose()
            }
        }
    };
}

impl_outbox!(
    SqliteStore,
    sqlx::SqliteConnection,
    "",
    "UPDATE deliveries SET status = json_extract(j.value, '$.s'), provider_status = json_extract(j.value, '$.ps'), \
     provider_reason = json_extract(j.value, '$.pr'), \
     provider_message_id = COALESCE(json_extract(j.value, '$.pm'), provider_message_id), \
     next_attempt_at = json_extract(j.value, '$.n'), lease_owner = NULL, lease_until = NULL, updated_at = $2, \
     delivered_at = CASE WHEN json_extract(j.value, '$.s') = 'delivered' THEN $2 ELSE delivered_at END \
     FROM json_each($1) AS j WHERE deliveries.id = json_extract(j.value, '$.id') \
     AND deliveries.lease_owner = json_extract(j.value, '$.l') AND deliveries.status = 'sending' RETURNING deliveries.id"
);
impl_outbox!(
    PgStore,
    sqlx::PgConnection,
    "NOTIFY herald_work",
    "UPDATE deliveries AS d SET status = j.s, provider_status = j.ps, provider_reason = j.pr, \
     provider_message_id = COALESCE(j.pm, d.provider_message_id), next_attempt_at = j.n, lease_owner = NULL, \
     lease_until = NULL, updated_at = $2, delivered_at = CASE WHEN j.s = 'delivered' THEN $2 ELSE d.delivered_at END \
     FROM json_to_recordset($1::json) AS j(id BIGINT, l TEXT, s TEXT, ps BIGINT, pr TEXT, pm TEXT, n BIGINT) \
     WHERE d.id = j.id AND d.lease_owner = j.l AND d.status = 'sending' RETURNING d.id"
);
