//! The one-time canonicalisation of device addresses (migration 7), run on open after the SQL
//! migrations: every subscription gets its canonical address (trimmed, WHATWG-serialised Web Push
//! endpoint; lower-case APNs token; FCM token as is) and canonical settings (keys as unpadded
//! base64url). Rows that turn out to be the same device of the same user are merged into the
//! most recently seen one (topics united, the others kept inactive, reason `merged`, for their
//! delivery history), and a device active for several users stays with the one seen last (the
//! others become inactive, reason `moved`). Rows already canonical (`address` set) are skipped,
//! so this costs one indexed query on every later start.

use std::collections::HashMap;

use herald_core::clock::now_ms;
use herald_core::model::ChannelType;
use herald_core::store::StoreResult;
use herald_core::validate::{b64_any, device_address, to_b64url};
use serde_json::Value;

use crate::{PgStore, SqliteStore, db_err};

type Row = (i64, i64, String, String, String, String, String);

/// What happens to one legacy row.
enum Plan {
    /// The row kept for its device: canonical address, identifier and settings.
    Keep { id: i64, address: String, identifier: String, settings: String, moved: bool },
    /// A second row of the same user for the same device, folded into `keep`.
    Fold { id: i64, keep: i64 },
}

/// Decides every row's fate; rows come most recently seen first.
fn plan(rows: Vec<Row>) -> Vec<Plan> {
    let mut kept: HashMap<(String, String, i64), i64> = HashMap::new();
    let mut owner: HashMap<(String, String), i64> = HashMap::new();
    let mut plans = Vec::with_capacity(rows.len());
    for (id, user_id, channel_id, channel_type, identifier, settings, status) in rows {
        let channel_type = ChannelType::parse(&channel_type).unwrap_or(ChannelType::Fcm);
        let mut settings: Value = serde_json::from_str(&settings).unwrap_or(Value::Null);
        let raw =
            settings.get("endpoint").or_else(|| settings.get("token")).and_then(Value::as_str).map(str::to_string);
        // A row whose settings no longer parse keeps a unique address of its own: it cannot be
        // a duplicate of anything, and it stays as it was.
        let address = device_address(channel_type, &settings).unwrap_or_else(|| format!("legacy:{id}"));
        if let Some(obj) = settings.as_object_mut() {
            let field = if channel_type == ChannelType::WebPush { "endpoint" } else { "token" };
            if obj.contains_key(field) && !address.starts_with("legacy:") {
                obj.insert(field.into(), Value::String(address.clone()));
            }
            for key in ["p256dh", "auth"] {
                if let Some(bytes) = obj.get(key).and_then(Value::as_str).and_then(b64_any) {
                    obj.insert(key.into(), Value::String(to_b64url(&bytes)));
                }
            }
        }
        let identifier = if raw.as_deref() == Some(identifier.as_str()) { address.clone() } else { identifier };
        let key = (channel_id.clone(), address.clone(), user_id);
        if let Some(&keep) = kept.get(&key) {
            plans.push(Plan::Fold { id, keep });
            continue;
        }
        kept.insert(key, id);
        let active = status == "active";
        let moved = active && *owner.entry((channel_id, address.clone())).or_insert(user_id) != user_id;
        plans.push(Plan::Keep { id, address, identifier, settings: settings.to_string(), moved });
    }
    plans
}

macro_rules! impl_canonical {
    ($store:ty) => {
        impl $store {
            /// Canonicalises the device addresses of rows that predate migration 7.
            pub(crate) async fn canonicalize_devices(&self) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(db_err)?;
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT s.id, s.user_id, s.channel_id, c.type, s.identifier, s.settings, s.status \
                     FROM subscriptions s JOIN channels c ON c.id = s.channel_id \
                     WHERE s.address IS NULL ORDER BY s.last_seen_at DESC, s.id DESC",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                if rows.is_empty() {
                    return Ok(());
                }
                let now = now_ms();
                let plans = plan(rows);
                // Folds first: they free the identifiers the kept rows take.
                for p in &plans {
                    if let Plan::Fold { id, keep } = p {
                        Self::fold_subscription(&mut tx, *keep, *id, "merged", now).await?;
                    }
                }
                for p in plans {
                    if let Plan::Keep { id, address, identifier, settings, moved } = p {
                        sqlx::query(
                            "UPDATE subscriptions SET address = $2, identifier = $3, settings = $4, \
                             status = CASE WHEN $5 THEN 'inactive' ELSE status END, \
                             inactive_reason = CASE WHEN $5 THEN 'moved' ELSE inactive_reason END WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&address)
                        .bind(&identifier)
                        .bind(&settings)
                        .bind(moved)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    }
                }
                tx.commit().await.map_err(db_err)
            }
        }
    };
}

impl_canonical!(SqliteStore);
impl_canonical!(PgStore);
