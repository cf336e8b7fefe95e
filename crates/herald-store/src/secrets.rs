//! Sealing the secrets already stored (herald-core `secrets` has the format): on every open,
//! plaintext left by an older version is sealed under the current master key, and every sealed
//! value is checked to open, so a missing or wrong key stops start-up with a message instead of
//! failing sends later; `herald secrets rotate` also moves values from the previous key to the
//! current one. Channels and webhooks are few: both tables are read whole.
//!
//! Each rewrite is a compare-and-set on the value read, so a config changed meanwhile (by the
//! API, or by another node starting at the same time) is left to whoever changed it: every
//! write through the store is sealed already.

use herald_core::secrets::{Reseal, ResealReport};
use herald_core::store::StoreResult;
use serde_json::Value;

use crate::{PgStore, SqliteStore, db_err};

macro_rules! impl_secrets {
    ($store:ty) => {
        impl $store {
            /// Seals plaintext secrets and, with [`Reseal::Rotate`], moves values under the
            /// previous master key to the current one. Fails on a value no configured key opens.
            pub(crate) async fn reseal_secrets(&self, mode: Reseal) -> StoreResult<ResealReport> {
                let mut report = ResealReport::default();
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let channels: Vec<(String, String)> =
                    sqlx::query_as("SELECT id, config FROM channels ORDER BY id").fetch_all(&mut *tx).await.map_err(db_err)?;
                for (id, stored) in channels {
                    // A config that is not JSON holds nothing Herald can find (or use): reads of
                    // it fail on their own, and it must not stop every other channel.
                    let Ok(config) = serde_json::from_str::<Value>(&stored) else {
                        tracing::warn!(channel = %id, "channel config is not JSON; its secrets were not sealed");
                        continue;
                    };
                    let Some(new) = self.secrets.reseal_channel_config(&id, &config, mode)? else { continue };
                    let done = sqlx::query("UPDATE channels SET config = $3 WHERE id = $1 AND config = $2")
                        .bind(&id)
                        .bind(&stored)
                        .bind(new.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    report.channels += done.rows_affected();
                }
                let webhooks: Vec<(String, String)> =
                    sqlx::query_as("SELECT id, secret FROM webhooks ORDER BY id").fetch_all(&mut *tx).await.map_err(db_err)?;
                for (id, stored) in webhooks {
                    let Some(new) = self.secrets.reseal_webhook_secret(&id, &stored, mode)? else { continue };
                    let done = sqlx::query("UPDATE webhooks SET secret = $3 WHERE id = $1 AND secret = $2")
                        .bind(&id)
                        .bind(&stored)
                        .bind(&new)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    report.webhooks += done.rows_affected();
                }
                tx.commit().await.map_err(db_err)?;
                if report.channels + report.webhooks > 0 {
                    self.flush_old_pages().await;
                    tracing::info!(
                        channels = report.channels,
                        webhooks = report.webhooks,
                        key = self.secrets.current_id(),
                        "stored secrets sealed under the current master key"
                    );
                }
                Ok(report)
            }
        }
    };
}

impl_secrets!(SqliteStore);
impl_secrets!(PgStore);
