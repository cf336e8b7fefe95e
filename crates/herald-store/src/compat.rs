//! The one implementation of [`CompatStore`] (chats, device links, deployment secrets) for both
//! engines; the SQL is shared, the macro only swaps the pool type.

use async_trait::async_trait;
use herald_core::clock::now_ms;
use herald_core::compat_store::{Chat, CompatStore};
use herald_core::store::StoreResult;

use crate::{PgStore, SqliteStore, db_err};

#[derive(sqlx::FromRow)]
struct ChatRow {
    id: String,
    account_id: i64,
    external_id: String,
    created_at: i64,
}

impl From<ChatRow> for Chat {
    fn from(r: ChatRow) -> Self {
        Chat { id: r.id, account_id: r.account_id, external_id: r.external_id, created_at: r.created_at }
    }
}

macro_rules! impl_compat {
    ($store:ty) => {
        #[async_trait]
        impl CompatStore for $store {
            async fn deployment_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
                sqlx::query(
                    "INSERT INTO deployment_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(candidate)
                .bind(now_ms())
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                // Whoever stored first, this is the secret every node now reads.
                sqlx::query_scalar("SELECT secret FROM deployment_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(self.writer())
                    .await
                    .map_err(db_err)
            }

            async fn insert_chat(&self, id: &str, account_id: i64, external_id: &str) -> StoreResult<Option<Chat>> {
                let row: Option<ChatRow> = sqlx::query_as(
                    "INSERT INTO chats (id, account_id, user_id, created_at) \
                     SELECT $1, account_id, id, $4 FROM users WHERE account_id = $2 AND external_id = $3 \
                     RETURNING id, account_id, $3 AS external_id, created_at",
                )
                .bind(id)
                .bind(account_id)
                .bind(external_id)
                .bind(now_ms())
                .fetch_optional(self.writer())
                .await
                .map_err(db_err)?;
                Ok(row.map(Chat::from))
            }

            async fn get_chat(&self, account_id: i64, id: &str) -> StoreResult<Option<Chat>> {
                let row: Option<ChatRow> = sqlx::query_as(
                    "SELECT c.id, c.account_id, u.external_id, c.created_at FROM chats c \
                     JOIN users u ON u.id = c.user_id WHERE c.account_id = $1 AND c.id = $2",
                )
                .bind(account_id)
                .bind(id)
                .fetch_optional(self.reader())
                .await
                .map_err(db_err)?;
                Ok(row.map(Chat::from))
            }

            async fn user_subscription_ids(
                &self,
                account_id: i64,
                external_id: &str,
                identifier: &str,
            ) -> StoreResult<Vec<i64>> {
                sqlx::query_scalar(
                    "SELECT s.id FROM subscriptions s JOIN users u ON u.id = s.user_id \
                     WHERE u.account_id = $1 AND u.external_id = $2 AND s.address = $3 ORDER BY s.id",
                )
                .bind(account_id)
                .bind(external_id)
                .bind(identifier)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)
            }

            async fn set_device_links(
                &self,
                account_id: i64,
                channel_id: &str,
                identifier: &str,
                external_ids: &[String],
            ) -> StoreResult<()> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                sqlx::query("DELETE FROM device_links WHERE channel_id = $1 AND identifier = $2")
                    .bind(channel_id)
                    .bind(identifier)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if external_ids.len() > 1 {
                    for external_id in external_ids {
                        sqlx::query(
                            "INSERT INTO device_links (channel_id, identifier, user_id, created_at) \
                             SELECT $1, $2, id, $5 FROM users WHERE account_id = $3 AND external_id = $4 \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(channel_id)
                        .bind(identifier)
                        .bind(account_id)
                        .bind(external_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    }
                }
                tx.commit().await.map_err(db_err)
            }

            async fn unlink_device(
                &self,
                account_id: i64,
                channel_id: &str,
                identifier: &str,
                external_id: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "DELETE FROM device_links WHERE channel_id = $1 AND identifier = $2 \
                     AND user_id IN (SELECT id FROM users WHERE account_id = $3 AND external_id = $4)",
                )
                .bind(channel_id)
                .bind(identifier)
                .bind(account_id)
                .bind(external_id)
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn device_links(&self, channel_id: &str, identifier: &str) -> StoreResult<Vec<String>> {
                sqlx::query_scalar(
                    "SELECT u.external_id FROM device_links l JOIN users u ON u.id = l.user_id \
                     WHERE l.channel_id = $1 AND l.identifier = $2 ORDER BY u.external_id",
                )
                .bind(channel_id)
                .bind(identifier)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)
            }
        }
    };
}

impl_compat!(SqliteStore);
impl_compat!(PgStore);
