//! Events committed with their change: the helpers every write transaction uses to queue the
//! events of the rows it changed (`herald_core::events` builds them), before it commits.

use herald_core::events::{self, EventType};
use herald_core::model::Subscription;
use herald_core::store::StoreResult;
use sqlx::QueryBuilder;

use crate::rows::SubscriptionRow;
use crate::{PgStore, SqliteStore, db_err};

/// A subscription change to announce: which row, as what, and why.
pub(crate) type Change<'a> = (i64, EventType, Option<&'a str>);

macro_rules! impl_announce {
    ($store:ty, $conn:ty, $db:ty) => {
        impl $store {
            /// Subscriptions by id as this transaction sees them (what it is about to commit).
            pub(crate) async fn subscriptions_in(conn: &mut $conn, ids: &[i64]) -> StoreResult<Vec<Subscription>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb: QueryBuilder<$db> = QueryBuilder::new(concat!(subscription_select!(), "WHERE s.id IN ("));
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(")");
                let rows: Vec<SubscriptionRow> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(db_err)?;
                let mut qb: QueryBuilder<$db> = QueryBuilder::new(
                    "SELECT subscription_id, topic FROM subscription_topics WHERE subscription_id IN (",
                );
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(") ORDER BY topic");
                let topics: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(db_err)?;
                rows.into_iter()
                    .map(|r| {
                        let t = topics.iter().filter(|(id, _)| *id == r.id()).map(|(_, t)| t.clone()).collect();
                        r.into_domain(t)
                    })
                    .collect()
            }

            /// Queues the events of subscription changes, reading the rows in this transaction
            /// (so call it after the change, or before a delete).
            pub(crate) async fn announce_in(conn: &mut $conn, changes: &[Change<'_>]) -> StoreResult<()> {
                let ids: Vec<i64> = changes.iter().map(|c| c.0).collect();
                let subs = Self::subscriptions_in(conn, &ids).await?;
                let events: Vec<_> = changes
                    .iter()
                    .filter_map(|(id, kind, reason)| {
                        subs.iter().find(|s| s.id == *id).map(|s| events::subscription(s, *kind, *reason))
                    })
                    .collect();
                Self::enqueue_in(conn, &events).await.map(drop)
            }
        }
    };
}

impl_announce!(SqliteStore, sqlx::SqliteConnection, sqlx::Sqlite);
impl_announce!(PgStore, sqlx::PgConnection, sqlx::Postgres);
