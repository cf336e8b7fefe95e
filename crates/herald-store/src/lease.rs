//! The lease protocol, written once for both outboxes (push deliveries and webhook deliveries):
//! rows whose lease expired go back to the queue, then up to `limit` due rows are leased under one
//! token in a single statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several nodes never
//! lease the same row; SQLite has one writer). The caller then reads the rows it holds by that
//! token. Releasing leases by owner or by dead node is in `cluster.rs`, for both tables too.

use herald_core::clock::Millis;
use herald_core::store::StoreResult;

use crate::{PgStore, SqliteStore, db_err};

/// An outbox table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    /// `deliveries`: one row per (notification, subscription).
    Deliveries,
    /// `webhook_deliveries`: one row per (event, destination).
    Hooks,
}

/// The two statements of the protocol for one table and one engine's row lock.
macro_rules! lease_sql {
    ($table:literal, $lock:literal) => {
        (
            concat!(
                "UPDATE ",
                $table,
                " SET status = 'queued', lease_owner = NULL, lease_until = NULL WHERE status = 'sending' AND lease_until < $1"
            ),
            concat!(
                "UPDATE ",
                $table,
                " SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
                 WHERE id IN (SELECT id FROM ",
                $table,
                " WHERE status = 'queued' AND next_attempt_at <= $3 ORDER BY next_attempt_at LIMIT $4",
                $lock,
                ")"
            ),
        )
    };
}

macro_rules! impl_lease {
    ($store:ty, $lock:literal) => {
        impl $store {
            /// Returns expired leases of `queue` to it, then leases its due rows under `lease`
            /// until `now + lease_ms`; returns how many rows were leased.
            pub(crate) async fn lease_due(
                &self,
                queue: Queue,
                lease: &str,
                now: Millis,
                lease_ms: i64,
                limit: u32,
            ) -> StoreResult<u64> {
                let (expire, claim) = match queue {
                    Queue::Deliveries => lease_sql!("deliveries", $lock),
                    Queue::Hooks => lease_sql!("webhook_deliveries", $lock),
                };
                // Rows whose worker died keep `sending` past their lease: put them back first.
                sqlx::query(expire).bind(now).execute(self.writer()).await.map_err(db_err)?;
                let claimed = sqlx::query(claim)
                    .bind(lease)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(limit as i64)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(claimed.rows_affected())
            }
        }
    };
}

impl_lease!(SqliteStore, "");
impl_lease!(PgStore, " FOR UPDATE SKIP LOCKED");
