//! [`WebhookStore`] for both engines: webhook endpoints and the hook outbox.

use async_trait::async_trait;
use herald_core::StoreError;
use herald_core::clock::Millis;
use herald_core::secrets::Keyring;
use herald_core::store::StoreResult;
use herald_core::webhooks::*;
use serde_json::Value;

use crate::{PgStore, SqliteStore, db_err};

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    account_id: i64,
    url: String,
    events: String,
    secret: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl WebhookRow {
    /// The webhook with its signing secret opened.
    fn into_domain(self, secrets: &Keyring) -> Result<Webhook, StoreError> {
        Ok(Webhook {
            secret: secrets.open_webhook_secret(&self.id, &self.secret)?,
            id: self.id,
            account_id: self.account_id,
            url: self.url,
            events: serde_json::from_str(&self.events).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            failing_since: self.failing_since,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct HookRow {
    id: i64,
    account_id: i64,
    kind: String,
    webhook_id: Option<String>,
    event_id: String,
    payload: String,
    attempts: i64,
    created_at: i64,
    url: Option<String>,
    secret: Option<String>,
    enabled: Option<bool>,
    channel_id: Option<String>,
    config: Option<String>,
}

impl HookRow {
    /// Resolves where the hook goes: the (enabled) webhook's URL and secret, or the channel's
    /// callback URL and Basic credential (opened). An empty URL means "nowhere any more".
    fn into_claimed(self, lease: &str, secrets: &Keyring) -> Result<ClaimedHook, StoreError> {
        let (url, secret) = if self.kind == "webhook" {
            match (self.enabled, self.url, self.webhook_id.as_deref(), self.secret) {
                (Some(true), Some(url), Some(id), Some(secret)) => (url, secrets.open_webhook_secret(id, &secret)?),
                _ => (String::new(), String::new()),
            }
        } else {
            let config: Value = self.config.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
            let config = match self.channel_id.as_deref() {
                Some(id) => secrets.open_channel_config(id, config)?,
                None => Value::Null,
            };
            let get = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            (get("callback_url"), get("callback_auth"))
        };
        Ok(ClaimedHook {
            lease: lease.to_string(),
            id: self.id,
            account_id: self.account_id,
            kind: self.kind,
            webhook_id: self.webhook_id,
            event_id: self.event_id,
            payload: self.payload,
            attempts: self.attempts,
            url,
            secret,
            created_at: self.created_at,
        })
    }
}

macro_rules! webhook_cols {
    () => {
        "id, account_id, url, events, secret, enabled, disabled_reason, failing_since, created_at, updated_at"
    };
}

macro_rules! impl_webhooks {
    ($store:ident, $conn:ty) => {
        impl $store {
            /// Queues each event for every enabled webhook of its account that subscribes to its
            /// type, and for its channel's callback, inside the caller's transaction.
            pub(crate) async fn enqueue_in(tx: &mut $conn, events: &[Event]) -> StoreResult<u64> {
                if events.is_empty() {
                    return Ok(0);
                }
                let now = herald_core::clock::now_ms();
                let mut queued = 0;
                let mut hooks: std::collections::HashMap<i64, Vec<WebhookRow>> = Default::default();
                for e in events {
                    if !hooks.contains_key(&e.account_id) {
                        let rows: Vec<WebhookRow> = sqlx::query_as(concat!(
                            "SELECT ", webhook_cols!(), " FROM webhooks WHERE account_id = $1 AND enabled"
                        ))
                        .bind(e.account_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                        hooks.insert(e.account_id, rows);
                    }
                    let event_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                    let payload = e.payload.to_string();
                    for hook in &hooks[&e.account_id] {
                        let wants: Vec<String> = serde_json::from_str(&hook.events).unwrap_or_default();
                        if !wants.iter().any(|t| t == e.event_type.as_str()) {
                            continue;
                        }
                        queued += Self::insert_hook(tx, e, "webhook", Some(&hook.id), None, &event_id, &payload, now).await?;
                    }
                    if let Some((channel_id, body)) = &e.callback {
                        let has_callback: Option<String> = sqlx::query_scalar(
                            "SELECT id FROM channels WHERE id = $1 AND deleted_at IS NULL AND config LIKE '%\"callback_url\"%'",
                        )
                        .bind(channel_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                        if has_callback.is_some() {
                            let body = body.to_string();
                            queued += Self::insert_hook(tx, e, "callback", None, Some(channel_id), &event_id, &body, now).await?;
                        }
                    }
                }
                Ok(queued)
            }

            #[allow(clippy::too_many_arguments)]
            async fn insert_hook(
                conn: &mut $conn,
                e: &Event,
                kind: &str,
                webhook_id: Option<&str>,
                channel_id: Option<&str>,
                event_id: &str,
                payload: &str,
                now: Millis,
            ) -> StoreResult<u64> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (account_id, kind, webhook_id, channel_id, event_id, event_type, payload, \
         status, attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8, $8)",
    )
    .bind(e.account_id)
    .bind(kind)
    .bind(webhook_id)
    .bind(channel_id)
    .bind(event_id)
    .bind(e.event_type.as_str())
    .bind(payload)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    // A plain INSERT of one row: it either added the row or failed.
    Ok(1)
}
        }

        #[async_trait]
        impl WebhookStore for $store {
            async fn insert_webhook(&self, h: &Webhook) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webhooks (id, account_id, url, events, secret, enabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&h.id)
                .bind(h.account_id)
                .bind(&h.url)
                .bind(Value::from(h.events.clone()).to_string())
                .bind(self.secrets.seal_webhook_secret(&h.id, &h.secret))
                .bind(h.enabled)
                .bind(h.created_at)
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn get_webhook(&self, account_id: i64, id: &str) -> StoreResult<Option<Webhook>> {
                let row: Option<WebhookRow> =
                    sqlx::query_as(concat!("SELECT ", webhook_cols!(), " FROM webhooks WHERE account_id = $1 AND id = $2"))
                        .bind(account_id)
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(db_err)?;
                row.map(|r| r.into_domain(&self.secrets)).transpose()
            }

            async fn list_webhooks(&self, account_id: i64) -> StoreResult<Vec<Webhook>> {
                let rows: Vec<WebhookRow> = sqlx::query_as(concat!(
                    "SELECT ", webhook_cols!(), " FROM webhooks WHERE account_id = $1 ORDER BY created_at, id"
                ))
                .bind(account_id)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                rows.into_iter().map(|r| r.into_domain(&self.secrets)).collect()
            }

            async fn update_webhook(&self, account_id: i64, id: &str, p: &WebhookPatch) -> StoreResult<Option<Webhook>> {
                let row: Option<WebhookRow> = sqlx::query_as(concat!(
                    "UPDATE webhooks SET url = COALESCE($3, url), events = COALESCE($4, events), \
                     enabled = COALESCE($5, enabled), secret = COALESCE($6, secret), updated_at = $7, \
                     disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END, \
                     failing_since = CASE WHEN $5 THEN NULL ELSE failing_since END \
                     WHERE account_id = $1 AND id = $2 RETURNING ",
                    webhook_cols!()
                ))
                .bind(account_id)
                .bind(id)
                .bind(p.url.as_deref())
                .bind(p.events.as_ref().map(|e| Value::from(e.clone()).to_string()))
                .bind(p.enabled)
                .bind(p.secret.as_deref().map(|s| self.secrets.seal_webhook_secret(id, s)))
                .bind(herald_core::clock::now_ms())
                .fetch_optional(self.writer())
                .await
                .map_err(db_err)?;
                row.map(|r| r.into_domain(&self.secrets)).transpose()
            }

            async fn delete_webhook(&self, account_id: i64, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn accounts_listening(&self) -> StoreResult<Vec<i64>> {
                sqlx::query_scalar(
                    "SELECT DISTINCT account_id FROM webhooks WHERE enabled \
                     UNION SELECT DISTINCT account_id FROM channels WHERE deleted_at IS NULL AND config LIKE '%\"callback_url\"%'",
                )
                .fetch_all(self.reader())
                .await
                .map_err(db_err)
            }

            async fn enqueue_events(&self, events: &[Event]) -> StoreResult<u64> {
                if events.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let queued = Self::enqueue_in(&mut tx, events).await?;
                tx.commit().await.map_err(db_err)?;
                Ok(queued)
            }

            async fn claim_hooks(&self, lease: &str, now: Millis, lease_ms: i64, limit: u32) -> StoreResult<Vec<ClaimedHook>> {
                let claimed = self.lease_due(crate::lease::Queue::Hooks, lease, now, lease_ms, limit).await?;
                if claimed == 0 {
                    return Ok(Vec::new());
                }
                let rows: Vec<HookRow> = sqlx::query_as(
                    "SELECT h.id, h.account_id, h.kind, h.webhook_id, h.event_id, h.payload, h.attempts, h.created_at, \
                     w.url, w.secret, w.enabled, h.channel_id, c.config FROM webhook_deliveries h \
                     LEFT JOIN webhooks w ON w.id = h.webhook_id LEFT JOIN channels c ON c.id = h.channel_id \
                     WHERE h.lease_owner = $1 AND h.status = 'sending' ORDER BY h.id",
                )
                .bind(lease)
                .fetch_all(self.writer())
                .await
                .map_err(db_err)?;
                rows.into_iter().map(|r| r.into_claimed(lease, &self.secrets)).collect()
            }

            async fn record_hooks(&self, results: &[HookResult], now: Millis) -> StoreResult<Vec<Webhook>> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let mut disabled = Vec::new();
                for r in results {
                    let status = match (r.delivered, r.next_attempt_at) {
                        (true, _) => "delivered",
                        (false, Some(_)) => "queued",
                        (false, None) => "failed",
                    };
                    let done = sqlx::query(
                        "UPDATE webhook_deliveries SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
                         last_status = $5, last_error = $6, lease_owner = NULL, lease_until = NULL, updated_at = $7, \
                         delivered_at = CASE WHEN $3 = 'delivered' THEN $7 ELSE delivered_at END \
                         WHERE id = $1 AND lease_owner = $2 AND status = 'sending'",
                    )
                    .bind(r.id)
                    .bind(&r.lease)
                    .bind(status)
                    .bind(r.next_attempt_at)
                    .bind(r.status.map(i64::from))
                    .bind(r.error.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    let Some(webhook_id) = r.webhook_id.as_deref().filter(|_| done.rows_affected() == 1) else { continue };
                    let sql = if r.delivered {
                        "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND $2 > 0"
                    } else {
                        "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1"
                    };
                    sqlx::query(sql).bind(webhook_id).bind(now).execute(&mut *tx).await.map_err(db_err)?;
                    let gone: Option<WebhookRow> = sqlx::query_as(concat!(
                        "UPDATE webhooks SET enabled = FALSE, disabled_reason = 'failing for 5 days', updated_at = $2 \
                         WHERE id = $1 AND enabled AND failing_since < $3 RETURNING ",
                        webhook_cols!()
                    ))
                    .bind(webhook_id)
                    .bind(now)
                    .bind(now - DISABLE_AFTER_MS)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if let Some(row) = gone {
                        disabled.push(row.into_domain(&self.secrets)?);
                    }
                }
                let events: Vec<Event> = disabled
                    .iter()
                    .map(|w| {
                        let data = herald_core::events::WebhookDisabled {
                            id: w.id.clone(),
                            url: w.url.clone(),
                            reason: w.disabled_reason.clone(),
                        };
                        herald_core::events::webhook_disabled(w.account_id, data)
                    })
                    .collect();
                Self::enqueue_in(&mut tx, &events).await?;
                tx.commit().await.map_err(db_err)?;
                Ok(disabled)
            }
        }
    };
}

impl_webhooks!(SqliteStore, sqlx::SqliteConnection);
impl_webhooks!(PgStore, sqlx::PgConnection);
