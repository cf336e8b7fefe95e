//! The one implementation of [`NodeStore`] for both engines (see `herald_core::cluster`).

use async_trait::async_trait;
use herald_core::clock::Millis;
use herald_core::cluster::NodeStore;
use herald_core::store::StoreResult;

use crate::{PgStore, SqliteStore, db_err};

/// Puts leased deliveries back in the queue; the interrupted attempt does not count.
const RELEASE_DELIVERIES: &str = "UPDATE deliveries SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE status = 'sending' AND lease_owner LIKE $1";
const RELEASE_HOOKS: &str = "UPDATE webhook_deliveries SET status = 'queued', lease_owner = NULL, lease_until = NULL \
     WHERE status = 'sending' AND lease_owner LIKE $1";

macro_rules! impl_cluster {
    ($store:ty) => {
        #[async_trait]
        impl NodeStore for $store {
            async fn register_node(&self, id: &str, now: Millis) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
                )
                .bind(id)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn heartbeat_node(&self, id: &str, now: Millis) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE nodes SET heartbeat_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn reap_nodes(&self, dead_before: Millis) -> StoreResult<(Vec<String>, u64)> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let dead: Vec<String> = sqlx::query_scalar("DELETE FROM nodes WHERE heartbeat_at < $1 RETURNING id")
                    .bind(dead_before)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let mut released = 0;
                for id in &dead {
                    let owner = format!("{id}.%");
                    for sql in [RELEASE_DELIVERIES, RELEASE_HOOKS] {
                        let done = sqlx::query(sql).bind(&owner).execute(&mut *tx).await.map_err(db_err)?;
                        released += done.rows_affected();
                    }
                }
                tx.commit().await.map_err(db_err)?;
                Ok((dead, released))
            }

            async fn release_leases_of(&self, prefix: &str) -> StoreResult<u64> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let owner = format!("{prefix}%");
                let mut released = 0;
                for sql in [RELEASE_DELIVERIES, RELEASE_HOOKS] {
                    released += sqlx::query(sql).bind(&owner).execute(&mut *tx).await.map_err(db_err)?.rows_affected();
                }
                tx.commit().await.map_err(db_err)?;
                Ok(released)
            }

            async fn live_nodes(&self, since: Millis) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nodes WHERE heartbeat_at >= $1")
                    .bind(since)
                    .fetch_one(self.reader())
                    .await
                    .map_err(db_err)?;
                Ok(n.max(0) as u64)
            }

            async fn unregister_node(&self, id: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM nodes WHERE id = $1").bind(id).execute(self.writer()).await.map_err(db_err)?;
                Ok(())
            }
        }
    };
}

impl_cluster!(SqliteStore);
impl_cluster!(PgStore);
