//! The one implementation of [`Store`], expanded for both engines. SQL is written once; the
//! macro only swaps the pool type.

use async_trait::async_trait;
use herald_core::clock::{Millis, now_ms};
use herald_core::model::*;
use herald_core::store::*;
use serde_json::Value;
use sqlx::QueryBuilder;

use herald_core::events::EventType;

use crate::rows::*;
use crate::{PgStore, SqliteStore, db_err};

fn to_domain<R, T: TryFrom<R, Error = herald_core::StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

macro_rules! impl_store {
    ($store:ty, $conn:ty) => {
        impl $store {
            async fn insert_key(conn: &mut $conn, account_id: i64, key: &NewApiKey, now: Millis) -> StoreResult<ApiKey> {
                let row: ApiKeyRow = sqlx::query_as(
                    "INSERT INTO api_keys (id, account_id, kind, prefix, key_hash, channel_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING id, account_id, kind, prefix, key_hash, channel_id, created_at, revoked_at",
                )
                .bind(&key.id)
                .bind(account_id)
                .bind(key.kind.as_str())
                .bind(&key.prefix)
                .bind(&key.hash)
                .bind(key.channel_id.as_deref())
                .bind(now)
                .fetch_one(conn)
                .await
                .map_err(db_err)?;
                row.try_into()
            }

            /// The user's internal id, creating the user when new.
            async fn ensure_user(conn: &mut $conn, account_id: i64, external_id: &str, now: Millis) -> StoreResult<i64> {
                sqlx::query(
                    "INSERT INTO users (account_id, external_id, properties, created_at, updated_at) \
                     VALUES ($1, $2, '{}', $3, $3) ON CONFLICT (account_id, external_id) DO NOTHING",
                )
                .bind(account_id)
                .bind(external_id)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
                sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND external_id = $2")
                    .bind(account_id)
                    .bind(external_id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_err)
            }

            /// Folds subscription `fold` into `keep` (two rows of one user for one device): its topics
            /// join `keep`'s, and it stays, inactive with `reason`, for its delivery history, under a
            /// placeholder address and identifier so it can never collide again.
            pub(crate) async fn fold_subscription(conn: &mut $conn, keep: i64, fold: i64, reason: &str, now: Millis) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO subscription_topics (subscription_id, account_id, topic) \
                     SELECT $1, account_id, topic FROM subscription_topics WHERE subscription_id = $2 \
                     ON CONFLICT DO NOTHING",
                )
                .bind(keep)
                .bind(fold)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
                sqlx::query("DELETE FROM subscription_topics WHERE subscription_id = $1")
                    .bind(fold)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
                let placeholder = format!("merged:{fold}");
                sqlx::query(
                    "UPDATE subscriptions SET status = 'inactive', inactive_reason = $2, address = $3, identifier = $3, \
                     updated_at = $4 WHERE id = $1",
                )
                .bind(fold)
                .bind(reason)
                .bind(&placeholder)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn replace_topics(conn: &mut $conn, account_id: i64, id: i64, topics: &[String]) -> StoreResult<()> {
                sqlx::query("DELETE FROM subscription_topics WHERE subscription_id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
                for topic in topics {
                    sqlx::query(
                        "INSERT INTO subscription_topics (subscription_id, account_id, topic) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(account_id)
                    .bind(topic)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
                }
                Ok(())
            }

            /// Fetches subscription rows and attaches their topics.
            async fn load_subscriptions(&self, rows: Vec<SubscriptionRow>) -> StoreResult<Vec<Subscription>> {
                let (Some(lo), Some(hi)) = (rows.iter().map(|r| r.id()).min(), rows.iter().map(|r| r.id()).max()) else {
                    return Ok(Vec::new());
                };
                let topics: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT subscription_id, topic FROM subscription_topics \
                     WHERE subscription_id >= $1 AND subscription_id <= $2 ORDER BY topic",
                )
                .bind(lo)
                .bind(hi)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                rows.into_iter()
                    .map(|r| {
                        let t = topics.iter().filter(|(id, _)| *id == r.id()).map(|(_, t)| t.clone()).collect();
                        r.into_domain(t)
                    })
                    .collect()
            }

            async fn channel_by(&self, account_id: i64, id: &str) -> StoreResult<Option<Channel>> {
                let row: Option<ChannelRow> = sqlx::query_as(concat!(
                    "SELECT ", channel_cols!(), " FROM channels WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL"
                ))
                .bind(account_id)
                .bind(id)
                .fetch_optional(self.reader())
                .await
                .map_err(db_err)?;
                row.map(|r| r.into_domain(&self.secrets)).transpose()
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn ready(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1 FROM accounts LIMIT 1").execute(self.reader()).await.map_err(db_err)?;
                Ok(())
            }

            async fn rotate_secrets(&self) -> StoreResult<herald_core::secrets::ResealReport> {
                self.reseal_secrets(herald_core::secrets::Reseal::Rotate).await
            }

            async fn create_account(&self, name: &str, dev_mode: bool, keys: &[NewApiKey]) -> StoreResult<Account> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let row: AccountRow = sqlx::query_as(concat!(
                    "INSERT INTO accounts (name, status, dev_mode, created_at, updated_at) VALUES ($1, 'active', $2, $3, $3) RETURNING ",
                    account_cols!()
                ))
                .bind(name)
                .bind(dev_mode)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
                let account = Account::try_from(row)?;
                for key in keys {
                    Self::insert_key(&mut tx, account.id, key, now).await?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(account)
            }

            async fn get_account(&self, id: i64) -> StoreResult<Option<Account>> {
                let row: Option<AccountRow> = sqlx::query_as(concat!("SELECT ", account_cols!(), " FROM accounts WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_err)?;
                row.map(Account::try_from).transpose()
            }

            async fn list_accounts(&self, after_id: Option<i64>, limit: u32) -> StoreResult<Vec<Account>> {
                let rows: Vec<AccountRow> =
                    sqlx::query_as(concat!("SELECT ", account_cols!(), " FROM accounts WHERE id > $1 ORDER BY id LIMIT $2"))
                        .bind(after_id.unwrap_or(0))
                        .bind(limit as i64)
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_err)?;
                to_domain(rows)
            }

            async fn update_account(&self, id: i64, patch: &AccountPatch) -> StoreResult<Option<Account>> {
                let row: Option<AccountRow> = sqlx::query_as(concat!(
                    "UPDATE accounts SET status = COALESCE($2, status), dev_mode = COALESCE($3, dev_mode), updated_at = $4, \
                     rate_limit_per_minute = CASE WHEN $5 THEN $6 ELSE rate_limit_per_minute END, \
                     policy = COALESCE($7, policy) WHERE id = $1 RETURNING ",
                    account_cols!()
                ))
                .bind(id)
                .bind(patch.status.map(AccountStatus::as_str))
                .bind(patch.dev_mode)
                .bind(now_ms())
                .bind(patch.rate_limit_per_minute.is_some())
                .bind(patch.rate_limit_per_minute.flatten())
                .bind(patch.policy.as_ref().map(|p| serde_json::to_string(p).unwrap_or_else(|_| "{}".into())))
                .fetch_optional(self.writer())
                .await
                .map_err(db_err)?;
                row.map(Account::try_from).transpose()
            }

            async fn insert_api_key(&self, account_id: i64, key: &NewApiKey) -> StoreResult<ApiKey> {
                let mut conn = self.writer().acquire().await.map_err(db_err)?;
                Self::insert_key(&mut conn, account_id, key, now_ms()).await
            }

            async fn find_api_keys(&self, prefix: &str) -> StoreResult<Vec<(ApiKey, Account)>> {
                let rows: Vec<KeyAccountRow> = sqlx::query_as(concat!(
                    "SELECT ", key_cols!(), ", a.id AS a_id, a.name AS a_name, a.status AS a_status, \
                     a.dev_mode AS a_dev_mode, a.rate_limit_per_minute AS a_rate_limit_per_minute, a.policy AS a_policy, \
                     a.created_at AS a_created_at \
                     FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                     WHERE k.prefix = $1 AND k.revoked_at IS NULL"
                ))
                .bind(prefix)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                to_domain(rows)
            }

            async fn list_api_keys(&self, account_id: i64) -> StoreResult<Vec<ApiKey>> {
                let rows: Vec<ApiKeyRow> =
                    sqlx::query_as(concat!("SELECT ", key_cols!(), " FROM api_keys k WHERE k.account_id = $1 ORDER BY k.created_at, k.id"))
                        .bind(account_id)
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_err)?;
                to_domain(rows)
            }

            async fn revoke_api_key(&self, account_id: i64, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL")
                    .bind(account_id)
                    .bind(id)
                    .bind(now_ms())
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (id, account_id, algorithm, public_key_pem, audience, issuer, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                    .bind(&key.id)
                    .bind(key.account_id)
                    .bind(key.algorithm.as_str())
                    .bind(&key.public_key_pem)
                    .bind(key.audience.as_deref())
                    .bind(key.issuer.as_deref())
                    .bind(key.created_at)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn list_signing_keys(&self, account_id: i64) -> StoreResult<Vec<SigningKey>> {
                let rows: Vec<SigningKeyRow> = sqlx::query_as(
                    "SELECT id, account_id, algorithm, public_key_pem, audience, issuer, created_at FROM signing_keys \
                     WHERE account_id = $1 ORDER BY created_at, id",
                )
                .bind(account_id)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                to_domain(rows)
            }

            async fn delete_signing_key(&self, account_id: i64, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM signing_keys WHERE account_id = $1 AND id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn upsert_user(&self, account_id: i64, external_id: &str, properties: Option<&Value>) -> StoreResult<Upserted<User>> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let props = properties.map(Value::to_string);
                let created: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO users (account_id, external_id, properties, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (account_id, external_id) DO NOTHING RETURNING id",
                )
                .bind(account_id)
                .bind(external_id)
                .bind(props.as_deref().unwrap_or("{}"))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                if created.is_none() && props.is_some() {
                    sqlx::query("UPDATE users SET properties = $3, updated_at = $4 WHERE account_id = $1 AND external_id = $2")
                        .bind(account_id)
                        .bind(external_id)
                        .bind(props.as_deref())
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                let row: UserRow = sqlx::query_as(concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND external_id = $2"))
                    .bind(account_id)
                    .bind(external_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(Upserted { value: row.try_into()?, created: created.is_some(), moved: Vec::new() })
            }

            async fn get_user(&self, account_id: i64, external_id: &str) -> StoreResult<Option<User>> {
                let row: Option<UserRow> =
                    sqlx::query_as(concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND external_id = $2"))
                        .bind(account_id)
                        .bind(external_id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(db_err)?;
                row.map(User::try_from).transpose()
            }

            async fn delete_user(&self, account_id: i64, external_id: &str) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND external_id = $2")
                    .bind(account_id)
                    .bind(external_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let Some(id) = id else { return Ok(false) };
                // Erasure removes subscriptions like any other removal: each one is announced.
                let subs: Vec<i64> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE user_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let changes: Vec<crate::announce::Change<'_>> =
                    subs.iter().map(|s| (*s, EventType::SubscriptionDeleted, None)).collect();
                Self::announce_in(&mut tx, &changes).await?;
                for sql in [
                    "DELETE FROM sessions WHERE user_id = $1",
                    "DELETE FROM subscription_topics WHERE subscription_id IN (SELECT id FROM subscriptions WHERE user_id = $1)",
                    "DELETE FROM subscriptions WHERE user_id = $1",
                    "DELETE FROM users WHERE id = $1",
                ] {
                    sqlx::query(sql).bind(id).execute(&mut *tx).await.map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn insert_session(&self, account_id: i64, external_id: &str, prefix: &str, hash: &[u8], expires_at: Millis) -> StoreResult<()> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let user_id = Self::ensure_user(&mut tx, account_id, external_id, now).await?;
                sqlx::query(
                    "INSERT INTO sessions (token_hash, prefix, account_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(hash)
                .bind(prefix)
                .bind(account_id)
                .bind(user_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(())
            }

            async fn find_sessions(&self, prefix: &str, now: Millis) -> StoreResult<Vec<(Vec<u8>, Session)>> {
                let rows: Vec<SessionRow> = sqlx::query_as(
                    "SELECT s.token_hash, s.account_id, s.user_id, u.external_id, s.expires_at \
                     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.prefix = $1 AND s.expires_at > $2",
                )
                .bind(prefix)
                .bind(now)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn delete_session(&self, account_id: i64, hash: &[u8]) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND token_hash = $2")
                    .bind(account_id)
                    .bind(hash)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_channel(&self, c: &NewChannel) -> StoreResult<Channel> {
                // The partial unique index on defaults settles a race between two first
                // channels of a type: the loser retries as a non-default channel.
                for attempt in 0..2 {
                    let now = now_ms();
                    let res: Result<ChannelRow, _> = sqlx::query_as(concat!(
                        "INSERT INTO channels (id, account_id, name, type, config, is_default, health, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6 AND NOT EXISTS (SELECT 1 FROM channels WHERE account_id = $2 AND type = $4 \
                         AND is_default AND deleted_at IS NULL), 'healthy', $7, $7) RETURNING ",
                        channel_cols!()
                    ))
                    .bind(&c.id)
                    .bind(c.account_id)
                    .bind(&c.name)
                    .bind(c.channel_type.as_str())
                    .bind(self.secrets.seal_channel_config(&c.id, &c.config).to_string())
                    .bind(attempt == 0)
                    .bind(now)
                    .fetch_one(self.writer())
                    .await;
                    match res.map_err(db_err) {
                        Ok(row) => return row.into_domain(&self.secrets),
                        Err(herald_core::StoreError::Conflict(_)) if attempt == 0 => continue,
                        Err(e) => return Err(e),
                    }
                }
                unreachable!("the second attempt never conflicts on the default index")
            }

            async fn get_channel(&self, account_id: i64, id: &str) -> StoreResult<Option<Channel>> {
                self.channel_by(account_id, id).await
            }

            async fn list_channels(&self, account_id: i64) -> StoreResult<Vec<Channel>> {
                let rows: Vec<ChannelRow> = sqlx::query_as(concat!(
                    "SELECT ", channel_cols!(), " FROM channels WHERE account_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
                ))
                .bind(account_id)
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
                rows.into_iter().map(|r| r.into_domain(&self.secrets)).collect()
            }

            async fn default_channel(&self, account_id: i64, channel_type: ChannelType) -> StoreResult<Option<Channel>> {
                let row: Option<ChannelRow> = sqlx::query_as(concat!(
                    "SELECT ", channel_cols!(), " FROM channels WHERE account_id = $1 AND type = $2 AND is_default AND deleted_at IS NULL"
                ))
                .bind(account_id)
                .bind(channel_type.as_str())
                .fetch_optional(self.reader())
                .await
                .map_err(db_err)?;
                row.map(|r| r.into_domain(&self.secrets)).transpose()
            }

            async fn update_channel(&self, account_id: i64, id: &str, patch: &ChannelPatch) -> StoreResult<Option<Channel>> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                if patch.make_default {
                    sqlx::query(
                        "UPDATE channels SET is_default = FALSE WHERE account_id = $1 AND is_default AND deleted_at IS NULL \
                         AND type = (SELECT type FROM channels WHERE id = $2 AND account_id = $1)",
                    )
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                let row: Option<ChannelRow> = sqlx::query_as(concat!(
                    "UPDATE channels SET name = COALESCE($3, name), config = COALESCE($4, config), \
                     is_default = is_default OR $5, updated_at = $6 \
                     WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING ",
                    channel_cols!()
                ))
                .bind(account_id)
                .bind(id)
                .bind(patch.name.as_deref())
                .bind(patch.config.as_ref().map(|c| self.secrets.seal_channel_config(id, c).to_string()))
                .bind(patch.make_default)
                .bind(now_ms())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                row.map(|r| r.into_domain(&self.secrets)).transpose()
            }

            async fn delete_channel(&self, account_id: i64, id: &str) -> StoreResult<bool> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let live: Option<(String, bool)> =
                    sqlx::query_as("SELECT type, is_default FROM channels WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL")
                        .bind(account_id)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                let Some((channel_type, was_default)) = live else { return Ok(false) };
                sqlx::query("UPDATE channels SET deleted_at = $2, is_default = FALSE, updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let deactivated: Vec<i64> = sqlx::query_scalar(
                    "UPDATE subscriptions SET status = 'inactive', inactive_reason = 'channel_deleted', updated_at = $2 \
                     WHERE channel_id = $1 AND status = 'active' RETURNING id",
                )
                .bind(id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let changes: Vec<crate::announce::Change<'_>> = deactivated
                    .iter()
                    .map(|s| (*s, EventType::SubscriptionDeactivated, Some("channel_deleted")))
                    .collect();
                Self::announce_in(&mut tx, &changes).await?;
                sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE channel_id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if was_default {
                    sqlx::query(
                        "UPDATE channels SET is_default = TRUE WHERE id = (SELECT id FROM channels \
                         WHERE account_id = $1 AND type = $2 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 1)",
                    )
                    .bind(account_id)
                    .bind(&channel_type)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(true)
            }

            async fn upsert_subscription(&self, sub: &NewSubscription) -> StoreResult<Upserted<Subscription>> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let user_id = Self::ensure_user(&mut tx, sub.account_id, &sub.external_id, now).await?;
                let settings = sub.settings.to_string();
                // The caller's identifier is the dedup key (notiflows), the device address is what
                // makes one device one subscription: a row of this user with the identifier wins,
                // else the row with the address; a second row of this user for the same device is
                // folded into the one kept (topics merged, history kept, marked `replaced`).
                let by_identifier: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM subscriptions WHERE channel_id = $1 AND identifier = $2 AND user_id = $3",
                )
                .bind(&sub.channel_id)
                .bind(&sub.identifier)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                let by_address: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM subscriptions WHERE channel_id = $1 AND address = $2 AND user_id = $3",
                )
                .bind(&sub.channel_id)
                .bind(&sub.address)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                let mut folded = None;
                if let (Some(keep), Some(fold)) = (by_identifier, by_address)
                    && keep != fold
                {
                    Self::fold_subscription(&mut tx, keep, fold, "replaced", now).await?;
                    folded = Some(fold);
                }
                let existing = by_identifier.or(by_address);
                let inserted: Option<i64> = match existing {
                    Some(_) => None,
                    None => sqlx::query_scalar(
                        "INSERT INTO subscriptions (account_id, user_id, channel_id, identifier, address, settings, kind, \
                         environment, status, muted, created_at, updated_at, last_seen_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', FALSE, $9, $9, $9) \
                         ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(sub.account_id)
                    .bind(user_id)
                    .bind(&sub.channel_id)
                    .bind(&sub.identifier)
                    .bind(&sub.address)
                    .bind(&settings)
                    .bind(sub.kind.as_str())
                    .bind(sub.environment.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?,
                };
                let id = match (inserted, existing) {
                    (Some(id), _) => id,
                    (None, target) => sqlx::query_scalar(
                        "UPDATE subscriptions SET identifier = $4, address = $5, settings = $6, kind = $7, environment = $8, \
                         status = 'active', inactive_reason = NULL, updated_at = $9, last_seen_at = $9 \
                         WHERE channel_id = $1 AND user_id = $3 AND ($2 = id OR ($2 = 0 AND (identifier = $4 OR address = $5))) \
                         RETURNING id",
                    )
                    .bind(&sub.channel_id)
                    .bind(target.unwrap_or(0))
                    .bind(user_id)
                    .bind(&sub.identifier)
                    .bind(&sub.address)
                    .bind(&settings)
                    .bind(sub.kind.as_str())
                    .bind(sub.environment.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?,
                };
                if let Some(topics) = &sub.topics {
                    Self::replace_topics(&mut tx, sub.account_id, id, topics).await?;
                }
                // A device belongs to the user who registered it last, except that users a device
                // sync linked to it (with this user) keep it. Keyed on the device's address, never
                // on a caller-chosen identifier.
                let moved: Vec<i64> = sqlx::query_scalar(
                    "UPDATE subscriptions SET status = 'inactive', inactive_reason = 'moved', updated_at = $4 \
                     WHERE channel_id = $1 AND address = $2 AND user_id <> $3 AND status = 'active' \
                     AND NOT EXISTS (SELECT 1 FROM device_links me JOIN device_links other \
                     ON other.channel_id = me.channel_id AND other.identifier = me.identifier \
                     WHERE me.channel_id = $1 AND me.identifier = $2 AND me.user_id = $3 \
                     AND other.user_id = subscriptions.user_id) RETURNING id",
                )
                .bind(&sub.channel_id)
                .bind(&sub.address)
                .bind(user_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let kind = if inserted.is_some() { EventType::SubscriptionCreated } else { EventType::SubscriptionUpdated };
                let mut changes: Vec<crate::announce::Change<'_>> = vec![(id, kind, None)];
                changes.extend(folded.map(|f| (f, EventType::SubscriptionDeactivated, Some("replaced"))));
                changes.extend(moved.iter().map(|m| (*m, EventType::SubscriptionDeactivated, Some("moved"))));
                Self::announce_in(&mut tx, &changes).await?;
                tx.commit().await.map_err(db_err)?;
                let value = self.get_subscription(sub.account_id, id).await?.ok_or_else(|| {
                    herald_core::StoreError::Corrupt(format!("subscription {id} vanished after upsert"))
                })?;
                Ok(Upserted { value, created: inserted.is_some(), moved })
            }

            async fn get_subscription(&self, account_id: i64, id: i64) -> StoreResult<Option<Subscription>> {
                let row: Option<SubscriptionRow> = sqlx::query_as(concat!(subscription_select!(), "WHERE s.account_id = $1 AND s.id = $2"))
                    .bind(account_id)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_err)?;
                Ok(self.load_subscriptions(row.into_iter().collect()).await?.pop())
            }

            async fn list_subscriptions(&self, f: &SubscriptionFilter) -> StoreResult<Vec<Subscription>> {
                // Only the filters given become conditions: `($n IS NULL OR col = $n)` would keep
                // both engines from using the matching index.
                let mut qb = match &f.external_id {
                    Some(user) => {
                        let mut qb = QueryBuilder::new(concat!(subscription_select_by_user!(), "AND u.account_id = "));
                        qb.push_bind(f.account_id).push(" AND u.external_id = ").push_bind(user.clone());
                        qb
                    }
                    None => {
                        let mut qb = QueryBuilder::new(concat!(subscription_select!(), "WHERE s.account_id = "));
                        qb.push_bind(f.account_id);
                        qb
                    }
                };
                // (By user, the account is fixed by the user row; repeating it on `s` would steer
                // SQLite to the per-account index instead of the per-user one.)
                qb.push(" AND s.id > ").push_bind(f.after_id.unwrap_or(0));
                if let Some(channel) = &f.channel_id {
                    qb.push(" AND s.channel_id = ").push_bind(channel.clone());
                }
                if let Some(status) = f.status {
                    qb.push(" AND s.status = ").push_bind(status.as_str());
                }
                if let Some(topic) = &f.topic {
                    qb.push(" AND s.id IN (SELECT subscription_id FROM subscription_topics WHERE account_id = ")
                        .push_bind(f.account_id)
                        .push(" AND topic = ")
                        .push_bind(topic.clone())
                        .push(")");
                }
                qb.push(" ORDER BY s.id LIMIT ").push_bind(f.limit as i64);
                let rows: Vec<SubscriptionRow> = qb.build_query_as().fetch_all(self.reader()).await.map_err(db_err)?;
                self.load_subscriptions(rows).await
            }

            async fn update_subscription(&self, account_id: i64, id: i64, patch: &SubscriptionPatch) -> StoreResult<Option<Subscription>> {
                let now = now_ms();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let was_active: Option<bool> =
                    sqlx::query_scalar("SELECT status = 'active' FROM subscriptions WHERE account_id = $1 AND id = $2")
                        .bind(account_id)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                let status = patch.status.map(SubscriptionStatus::as_str);
                let done = sqlx::query(
                    "UPDATE subscriptions SET muted = COALESCE($3, muted), status = COALESCE($4, status), \
                     inactive_reason = CASE WHEN $4 IS NULL THEN inactive_reason WHEN $4 = 'active' THEN NULL ELSE 'api' END, \
                     updated_at = $5 WHERE account_id = $1 AND id = $2",
                )
                .bind(account_id)
                .bind(id)
                .bind(patch.muted)
                .bind(status)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                if let Some(topics) = &patch.topics {
                    Self::replace_topics(&mut tx, account_id, id, topics).await?;
                }
                let change = if was_active == Some(true) && patch.status == Some(SubscriptionStatus::Inactive) {
                    (id, EventType::SubscriptionDeactivated, Some("api"))
                } else {
                    (id, EventType::SubscriptionUpdated, None)
                };
                Self::announce_in(&mut tx, &[change]).await?;
                tx.commit().await.map_err(db_err)?;
                self.get_subscription(account_id, id).await
            }

            async fn delete_subscription(&self, account_id: i64, id: i64) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE account_id = $1 AND id = $2")
                    .bind(account_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if exists.is_some() {
                    // Announced while the row can still be read, committed with its deletion.
                    Self::announce_in(&mut tx, &[(id, EventType::SubscriptionDeleted, None)]).await?;
                }
                sqlx::query("DELETE FROM subscription_topics WHERE account_id = $1 AND subscription_id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let done = sqlx::query("DELETE FROM subscriptions WHERE account_id = $1 AND id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn add_topic(&self, account_id: i64, subscription_id: i64, topic: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO subscription_topics (subscription_id, account_id, topic) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(subscription_id)
                .bind(account_id)
                .bind(topic)
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn remove_topic(&self, account_id: i64, subscription_id: i64, topic: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM subscription_topics WHERE subscription_id = $1 AND account_id = $2 AND topic = $3")
                    .bind(subscription_id)
                    .bind(account_id)
                    .bind(topic)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

impl_store!(SqliteStore, sqlx::SqliteConnection);
impl_store!(PgStore, sqlx::PgConnection);
