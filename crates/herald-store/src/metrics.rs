//! The one implementation of [`MetricsStore`] for both engines: a few grouped counts, read in the
//! background (never per scrape), using the partial indexes of the queues.

use async_trait::async_trait;
use herald_core::clock::Millis;
use herald_core::metrics::{MetricsStore, StoredState};
use herald_core::store::StoreResult;

use crate::{PgStore, SqliteStore, db_err};

const QUEUE: &str = "SELECT CASE WHEN status = 'sending' THEN 'leased' WHEN attempts > 0 THEN 'retrying' \
     WHEN next_attempt_at > $1 THEN 'scheduled' ELSE 'due' END AS state, COUNT(*) \
     FROM deliveries WHERE status IN ('queued', 'sending') GROUP BY 1";
const SUBSCRIPTIONS: &str = "SELECT c.type, s.status, COUNT(*) FROM subscriptions s JOIN channels c ON c.id = s.channel_id \
     GROUP BY c.type, s.status";

fn state_name(s: &str) -> &'static str {
    match s {
        "leased" => "leased",
        "retrying" => "retrying",
        "scheduled" => "scheduled",
        _ => "due",
    }
}

macro_rules! impl_metrics {
    ($store:ty) => {
        #[async_trait]
        impl MetricsStore for $store {
            async fn stored_state(&self, now: Millis) -> StoreResult<StoredState> {
                let queue: Vec<(String, i64)> =
                    sqlx::query_as(QUEUE).bind(now).fetch_all(self.reader()).await.map_err(db_err)?;
                let fanouts_pending: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE fanout_status = 'pending'")
                        .fetch_one(self.reader())
                        .await
                        .map_err(db_err)?;
                let webhook_outbox: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status IN ('queued', 'sending')")
                        .fetch_one(self.reader())
                        .await
                        .map_err(db_err)?;
                let subscriptions: Vec<(String, String, i64)> =
                    sqlx::query_as(SUBSCRIPTIONS).fetch_all(self.reader()).await.map_err(db_err)?;
                let channels_unhealthy: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM channels WHERE health = 'unhealthy' AND deleted_at IS NULL",
                )
                .fetch_one(self.reader())
                .await
                .map_err(db_err)?;
                Ok(StoredState {
                    queue: queue.iter().map(|(s, n)| (state_name(s), *n)).collect(),
                    fanouts_pending,
                    webhook_outbox,
                    subscriptions,
                    channels_unhealthy,
                    pool: self.pool_stats(),
                })
            }
        }
    };
}

impl SqliteStore {
    fn pool_stats(&self) -> (u32, u32) {
        let idle = (self.write.num_idle() + self.read.num_idle()) as u32;
        let size = self.write.size() + self.read.size();
        (idle, size.saturating_sub(idle))
    }
}

impl PgStore {
    fn pool_stats(&self) -> (u32, u32) {
        let idle = self.pool.num_idle() as u32;
        (idle, self.pool.size().saturating_sub(idle))
    }
}

impl_metrics!(SqliteStore);
impl_metrics!(PgStore);
