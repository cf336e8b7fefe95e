//! The storage seam of what only the compatible surfaces need persisted: Bright Pattern chats,
//! the links a Discord-style device sync makes between users, and per-deployment secrets.
//! Implemented next to [`crate::store::Store`] for both engines.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::store::StoreResult;

/// A Bright Pattern chat session of one client (user). Its subscribers carry the topic
/// `chat:<id>` (DESIGN.md section 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub id: String,
    pub account_id: i64,
    /// The client id (`clientId`), i.e. the user's external id.
    pub external_id: String,
    pub created_at: Millis,
}

/// Storage for chats, device links and deployment secrets.
#[async_trait]
pub trait CompatStore: Send + Sync {
    /// The deployment-wide secret `name`; `candidate` is stored when there is none yet. The first
    /// node to store one wins, so every node signs with the same secret.
    async fn deployment_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;

    /// Records a chat of an existing user; `None` when the user is unknown.
    async fn insert_chat(&self, id: &str, account_id: i64, external_id: &str) -> StoreResult<Option<Chat>>;
    async fn get_chat(&self, account_id: i64, id: &str) -> StoreResult<Option<Chat>>;

    /// Ids of a user's subscriptions of this device (canonical address), on any channel.
    async fn user_subscription_ids(
        &self,
        account_id: i64,
        external_id: &str,
        identifier: &str,
    ) -> StoreResult<Vec<i64>>;

    /// Makes `external_ids` exactly the users linked to the device (channel, identifier), in one
    /// transaction. Linked users keep the device when one of them registers it again (see
    /// [`crate::store::Store::upsert_subscription`]); fewer than two users means no link.
    async fn set_device_links(
        &self,
        account_id: i64,
        channel_id: &str,
        identifier: &str,
        external_ids: &[String],
    ) -> StoreResult<()>;

    /// Removes one user from a device's links; the others stay linked.
    async fn unlink_device(
        &self,
        account_id: i64,
        channel_id: &str,
        identifier: &str,
        external_id: &str,
    ) -> StoreResult<()>;

    /// The external ids of the users linked to the device, in order.
    async fn device_links(&self, channel_id: &str, identifier: &str) -> StoreResult<Vec<String>>;
}
