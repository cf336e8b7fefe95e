//! End users of an account, known by the app's own id.

use serde_json::Value;

use super::Service;
use crate::error::ServiceError;
use crate::model::User;
use crate::store::Upserted;
use crate::validate;

/// Largest accepted `properties` object, serialised.
const MAX_PROPERTIES_BYTES: usize = 16 * 1024;

impl Service {
    /// Creates or updates a user; `properties` replaces the stored object when given.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn upsert_user(
        &self,
        account_id: i64,
        external_id: &str,
        properties: Option<Value>,
    ) -> Result<Upserted<User>, ServiceError> {
        validate::external_id("user", external_id).map_err(|e| ServiceError::Validation(vec![e]))?;
        if let Some(p) = &properties {
            if !p.is_object() {
                return Err(ServiceError::invalid("properties", "invalid_type", "properties must be an object"));
            }
            if p.to_string().len() > MAX_PROPERTIES_BYTES {
                return Err(ServiceError::invalid(
                    "properties",
                    "too_long",
                    format!("properties must be at most {MAX_PROPERTIES_BYTES} bytes"),
                ));
            }
        }
        Ok(self.store.upsert_user(account_id, external_id, properties.as_ref()).await?)
    }

    /// One user.
    pub async fn get_user(&self, account_id: i64, external_id: &str) -> Result<User, ServiceError> {
        self.store.get_user(account_id, external_id).await?.ok_or_else(|| ServiceError::not_found("user", external_id))
    }

    /// Erases a user: their subscriptions, topics and sessions go with them.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn delete_user(&self, account_id: i64, external_id: &str) -> Result<(), ServiceError> {
        match self.store.delete_user(account_id, external_id).await? {
            true => {
                // Each of its subscriptions was announced as deleted, with the erasure.
                self.hooks_wake.notify_one();
                Ok(())
            }
            false => Err(ServiceError::not_found("user", external_id)),
        }
    }
}
