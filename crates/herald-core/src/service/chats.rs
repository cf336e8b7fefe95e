//! Bright Pattern chats: an app, known by its public key, requests a chat for one of its clients
//! and then subscribes the client's device to it. A chat is the topic `chat:<id>` (DESIGN.md
//! section 2), so a send to that topic reaches every device subscribed to the chat.

use super::{ClientCtx, DeviceToken, Service, new_id};
use crate::compat_store::Chat;
use crate::error::ServiceError;
use crate::model::{ChannelType, KeyKind, SubscriptionStatus};
use crate::store::SubscriptionFilter;
use crate::validate;

/// The mobile push services a chat reports, in this order.
const CHAT_SERVICES: [ChannelType; 2] = [ChannelType::Apns, ChannelType::Fcm];
/// More subscriptions than one client has for one chat, by far.
const CHAT_SUBSCRIPTIONS_LIMIT: u32 = 1000;

/// The topic of a chat.
pub fn chat_topic(chat_id: &str) -> String {
    format!("chat:{chat_id}")
}

/// Where a client stands with one push service for one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatServiceStatus {
    /// The client has an active subscription of this service for the chat.
    Subscribed,
    /// The account has the service but the client does not use it for the chat.
    Unsubscribed,
    /// The account has no channel of this type.
    NotConfigured,
}

impl ChatServiceStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatServiceStatus::Subscribed => "subscribed",
            ChatServiceStatus::Unsubscribed => "unsubscribed",
            ChatServiceStatus::NotConfigured => "not_configured",
        }
    }
}

/// One push service's status for a client and a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatService {
    pub channel_type: ChannelType,
    pub status: ChatServiceStatus,
}

impl Service {
    /// Identifies a client of an app by the app's public key and the client id the app presents.
    /// The key is public, so this names the client rather than proving it: Bright Pattern's
    /// model, in which the client id is a per-device value the app generated.
    pub async fn authenticate_app_client(&self, public_key: &str, client_id: &str) -> Result<ClientCtx, ServiceError> {
        let (account, _) = self.authenticate_key(public_key, KeyKind::Public).await?;
        validate::external_id("clientId", client_id).map_err(|e| ServiceError::Unauthenticated(e.message))?;
        Ok(ClientCtx { account, external_id: client_id.to_string() })
    }

    /// Opens a chat for a client (created as a user when new).
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn create_chat(&self, account_id: i64, external_id: &str) -> Result<Chat, ServiceError> {
        self.upsert_user(account_id, external_id, None).await?;
        self.store
            .insert_chat(&new_id(), account_id, external_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("user", external_id))
    }

    /// One of the client's chats; another client's chat is not found either.
    pub async fn client_chat(&self, account_id: i64, external_id: &str, chat_id: &str) -> Result<Chat, ServiceError> {
        self.store
            .get_chat(account_id, chat_id)
            .await?
            .filter(|c| c.external_id == external_id)
            .ok_or_else(|| ServiceError::not_found("chat", chat_id))
    }

    /// Subscribes the client's device to a chat, replacing the device the client used for the
    /// chat before (a changed token); with no device, cancels the client's subscriptions for the
    /// chat. Answers every mobile push service's status for this client and chat.
    #[tracing::instrument(skip_all, fields(account = account_id, chat = chat_id))]
    pub async fn subscribe_chat(
        &self,
        account_id: i64,
        external_id: &str,
        chat_id: &str,
        device: Option<&DeviceToken>,
    ) -> Result<Vec<ChatService>, ServiceError> {
        let chat = self.client_chat(account_id, external_id, chat_id).await?;
        let topic = chat_topic(&chat.id);
        let kept = match device {
            Some(d) => Some(self.attach_chat_device(account_id, external_id, &topic, d).await?),
            None => None,
        };
        self.detach_chat(account_id, external_id, &topic, kept).await?;
        self.chat_services(account_id, external_id, &topic).await
    }

    /// Registers the device with the chat's topic added to the topics it already carries (the
    /// same device may follow several chats); returns its subscription id.
    async fn attach_chat_device(
        &self,
        account_id: i64,
        external_id: &str,
        topic: &str,
        device: &DeviceToken,
    ) -> Result<i64, ServiceError> {
        let mut reg = self.device_registrations(account_id, std::slice::from_ref(device)).await?.remove(0);
        let mut topics = vec![topic.to_string()];
        let address = validate::canonical_token(device.route.channel_type, &device.token);
        for id in self.store.user_subscription_ids(account_id, external_id, &address).await? {
            if let Some(sub) = self.store.get_subscription(account_id, id).await?
                && reg.channel_id.as_deref() == Some(sub.channel_id.as_str())
            {
                topics.extend(sub.topics.into_iter().filter(|t| t != topic));
            }
        }
        reg.topics = Some(topics);
        Ok(self.register_subscription(account_id, external_id, reg).await?.value.id)
    }

    /// Takes the chat's topic off the client's subscriptions other than `kept`. One left with no
    /// topic at all existed only for the chat and is deleted.
    async fn detach_chat(
        &self,
        account_id: i64,
        external_id: &str,
        topic: &str,
        kept: Option<i64>,
    ) -> Result<(), ServiceError> {
        let filter = SubscriptionFilter {
            account_id,
            external_id: Some(external_id.to_string()),
            topic: Some(topic.to_string()),
            limit: CHAT_SUBSCRIPTIONS_LIMIT,
            ..Default::default()
        };
        for sub in self.store.list_subscriptions(&filter).await? {
            if Some(sub.id) == kept {
                continue;
            }
            let done = if sub.topics.iter().all(|t| t == topic) {
                self.delete_subscription(account_id, sub.id, Some(external_id)).await
            } else {
                self.set_topic(account_id, sub.id, Some(external_id), None, topic, false).await.map(drop)
            };
            match done {
                Ok(()) | Err(ServiceError::NotFound { .. }) => {} // gone concurrently: the same outcome
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn chat_services(
        &self,
        account_id: i64,
        external_id: &str,
        topic: &str,
    ) -> Result<Vec<ChatService>, ServiceError> {
        let filter = SubscriptionFilter {
            account_id,
            external_id: Some(external_id.to_string()),
            topic: Some(topic.to_string()),
            status: Some(SubscriptionStatus::Active),
            limit: CHAT_SUBSCRIPTIONS_LIMIT,
            ..Default::default()
        };
        let subscribed = self.store.list_subscriptions(&filter).await?;
        let mut services = Vec::new();
        for channel_type in CHAT_SERVICES {
            let status = if self.store.default_channel(account_id, channel_type).await?.is_none() {
                ChatServiceStatus::NotConfigured
            } else if subscribed.iter().any(|s| s.channel_type == channel_type) {
                ChatServiceStatus::Subscribed
            } else {
                ChatServiceStatus::Unsubscribed
            };
            services.push(ChatService { channel_type, status });
        }
        Ok(services)
    }
}
