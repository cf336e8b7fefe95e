//! The one implementation of [`PairingStore`] for both engines. Redemption is a single
//! conditional `UPDATE … RETURNING`: on PostgreSQL a concurrent second claim waits for the row
//! lock and then no longer matches; SQLite has one writer. Either way exactly one claim wins.

use async_trait::async_trait;
use herald_core::clock::Millis;
use herald_core::pairing_store::*;
use herald_core::store::StoreResult;

use crate::{PgStore, SqliteStore, db_err};

/// (account_id, channel_id, external_id, created_at, expires_at, redeemed_at, subscription_id)
type Row = (i64, String, String, i64, i64, Option<i64>, Option<i64>);

macro_rules! pairing_cols {
    () => {
        "account_id, channel_id, external_id, created_at, expires_at, redeemed_at, subscription_id"
    };
}

fn to_code(r: Row) -> PairingCode {
    PairingCode {
        account_id: r.0,
        channel_id: r.1,
        external_id: r.2,
        created_at: r.3,
        expires_at: r.4,
        redeemed_at: r.5,
        subscription_id: r.6,
    }
}

macro_rules! impl_pairing {
    ($store:ty) => {
        #[async_trait]
        impl PairingStore for $store {
            async fn insert_pairing_code(&self, c: &NewPairingCode, purge_before: Millis) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                sqlx::query("DELETE FROM pairing_codes WHERE expires_at < $1")
                    .bind(purge_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                sqlx::query(
                    "INSERT INTO pairing_codes (code_hash, account_id, channel_id, external_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&c.hash)
                .bind(c.account_id)
                .bind(&c.channel_id)
                .bind(&c.external_id)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            async fn get_pairing_code(&self, hash: &[u8]) -> StoreResult<Option<PairingCode>> {
                let row: Option<Row> =
                    sqlx::query_as(concat!("SELECT ", pairing_cols!(), " FROM pairing_codes WHERE code_hash = $1"))
                        .bind(hash)
                        .fetch_optional(self.writer())
                        .await
                        .map_err(db_err)?;
                Ok(row.map(to_code))
            }

            async fn claim_pairing_code(&self, hash: &[u8], now: Millis) -> StoreResult<Option<PairingCode>> {
                let row: Option<Row> = sqlx::query_as(concat!(
                    "UPDATE pairing_codes SET redeemed_at = $2 \
                     WHERE code_hash = $1 AND redeemed_at IS NULL AND expires_at > $2 RETURNING ",
                    pairing_cols!()
                ))
                .bind(hash)
                .bind(now)
                .fetch_optional(self.writer())
                .await
                .map_err(db_err)?;
                Ok(row.map(to_code))
            }

            async fn release_pairing_code(&self, hash: &[u8], claimed_at: Millis) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE pairing_codes SET redeemed_at = NULL \
                     WHERE code_hash = $1 AND redeemed_at = $2 AND subscription_id IS NULL",
                )
                .bind(hash)
                .bind(claimed_at)
                .execute(self.writer())
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn complete_pairing_code(&self, hash: &[u8], subscription_id: i64) -> StoreResult<()> {
                sqlx::query("UPDATE pairing_codes SET subscription_id = $2 WHERE code_hash = $1")
                    .bind(hash)
                    .bind(subscription_id)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
        }
    };
}

impl_pairing!(SqliteStore);
impl_pairing!(PgStore);
