//! The service layer: one method per use case. The native API and every compatible surface
//! call these, so each business rule exists exactly once.

mod accounts;
mod auth;
mod channels;
mod chats;
mod credentials;
mod devices;
mod notifications;
pub mod pairing;
mod receipts;
mod subscriptions;
mod users;
mod webhooks;

use std::sync::Arc;

pub use accounts::AccountCreated;
pub use auth::ClientCtx;
pub use channels::{ChannelInput, ChannelView};
pub use chats::{ChatService, ChatServiceStatus, chat_topic};
pub use credentials::{KeyCreated, SessionCreated};
pub use devices::{DeviceRoute, DeviceToken};
pub use notifications::{MAX_TTL, SendAccepted, SendRequest, SendTarget, notification_view};
pub use subscriptions::{Registration, SubscriptionView, parse_status};
pub use webhooks::{WebhookInput, WebhookWithSecret};

use tokio::sync::Notify;

use crate::delivery::engine::Providers;
use crate::model::Page;
use crate::store::Store;
use crate::validate::EndpointPolicy;

/// Default page size of lists.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size a caller may ask for.
pub const MAX_LIMIT: u32 = 200;

/// The service layer. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    endpoints: Arc<dyn EndpointPolicy>,
    providers: Arc<Providers>,
    wake: Arc<Notify>,
    hooks_wake: Arc<Notify>,
    /// The receipt and renewal token key, read from the database on first use.
    tokens: Arc<tokio::sync::OnceCell<crate::tokens::TokenKey>>,
}

impl Service {
    /// Builds the service over a store, with the policy that decides which outbound URLs
    /// (Web Push endpoints, provider base URLs) may be stored.
    pub fn new(store: Arc<dyn Store>, endpoints: Arc<dyn EndpointPolicy>) -> Self {
        Self {
            store,
            endpoints,
            providers: Arc::new(Providers::new()),
            wake: Arc::new(Notify::new()),
            hooks_wake: Arc::new(Notify::new()),
            tokens: Arc::default(),
        }
    }

    /// Adds the providers (for payload limits) and the handle that wakes the delivery engine.
    pub fn with_delivery(mut self, providers: Arc<Providers>, wake: Arc<Notify>) -> Self {
        self.providers = providers;
        self.wake = wake;
        self
    }

    /// The handle that wakes the webhook worker.
    pub fn hooks_waker(&self) -> Arc<Notify> {
        self.hooks_wake.clone()
    }

    /// Re-encrypts every stored secret under the current master key (`herald secrets rotate`).
    pub async fn rotate_secrets(&self) -> Result<crate::secrets::ResealReport, crate::ServiceError> {
        Ok(self.store.rotate_secrets().await?)
    }

    /// The underlying store (for readiness checks and the delivery engine).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// A fresh random id for string-keyed entities.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Clamps a requested page size.
pub fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// Parses an integer-id cursor.
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, crate::ServiceError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<i64>().map_err(|_| crate::ServiceError::invalid_param("cursor", "cursor is not valid")))
        .transpose()
}

/// Builds a page from `limit + 1` fetched rows.
pub(crate) fn paginate<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|last| id(last).to_string())
    } else {
        None
    };
    Page { items, next_cursor }
}
