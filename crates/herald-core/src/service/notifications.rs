//! Sending: validation, idempotency, target resolution, payload limits, and the durable write
//! that precedes every 202. Also reading notifications back and the inbox.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use super::Service;
use crate::clock::{Millis, now_ms, rfc3339};
use crate::delivery::{Content, Options};
use crate::error::{FieldError, ServiceError, StoreError};
use crate::model::{
    ChannelType, Delivery, DeliveryStatus, FanoutStatus, Notification, Subscription, SubscriptionKind,
    SubscriptionStatus,
};
use crate::outbox::{DeliveryFilter, NewDelivery, NewNotification};

/// Longest TTL, and the default: four weeks (RFC 8030 services keep messages at most that long).
pub const MAX_TTL: u32 = 28 * 24 * 3600;
/// Most users one send may name.
pub const MAX_USERS: usize = 1000;

/// Whom a notification is for.
#[derive(Debug, Clone, PartialEq)]
pub enum SendTarget {
    User(String),
    Users(Vec<String>),
    Subscription(i64),
    Topic(String),
    Channel(String),
}

impl SendTarget {
    fn to_json(&self) -> Value {
        match self {
            SendTarget::User(u) => json!({"user": u}),
            SendTarget::Users(u) => json!({"users": u}),
            SendTarget::Subscription(s) => json!({"subscription": s}),
            SendTarget::Topic(t) => json!({"topic": t}),
            SendTarget::Channel(c) => json!({"channel_id": c}),
        }
    }

    fn is_broadcast(&self) -> bool {
        matches!(self, SendTarget::Topic(_) | SendTarget::Channel(_))
    }
}

/// A validated-at-the-edge send request.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub to: SendTarget,
    pub content: Content,
    pub options: Options,
    pub send_at: Option<Millis>,
    /// Channel types (`web_push`, `apns`, `fcm`) or channel ids to restrict the send to.
    pub channels: Option<Vec<String>>,
    pub idempotency_key: Option<String>,
    /// Canonical form of the request body, compared on idempotent replays.
    pub request_fingerprint: String,
}

/// The 202 answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SendAccepted {
    pub id: String,
    /// Delivery rows committed (direct sends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<u64>,
    /// `pending` for broadcasts, expanded in the background.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<String>,
}

fn check_len(errors: &mut Vec<FieldError>, field: &str, value: &Option<String>, max: usize) {
    if value.as_ref().is_some_and(|v| v.chars().count() > max) {
        errors.push(FieldError::too_long(field, max));
    }
}

fn check_url(errors: &mut Vec<FieldError>, field: &str, value: &Option<String>) {
    check_len(errors, field, value, 2048);
    if let Some(v) = value
        && !url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
        && !v.starts_with('/')
    {
        errors.push(FieldError::new(field, "invalid", format!("{field} must be an http(s) URL or an absolute path")));
    }
}

/// Validates content and options; returns the field errors.
fn validate(req: &SendRequest) -> Vec<FieldError> {
    let mut e = Vec::new();
    let c = &req.content;
    check_len(&mut e, "title", &c.title, 256);
    check_len(&mut e, "body", &c.body, 4096);
    check_len(&mut e, "tag", &c.tag, 256);
    check_len(&mut e, "sound", &c.sound, 256);
    for (field, value) in [("url", &c.url), ("icon", &c.icon), ("image", &c.image)] {
        check_url(&mut e, field, value);
    }
    if c.data.as_ref().is_some_and(|d| !d.is_object()) {
        e.push(FieldError::new("data", "invalid_type", "data must be an object"));
    }
    if c.actions
        .as_ref()
        .is_some_and(|a| !a.as_array().is_some_and(|a| a.len() <= 10 && a.iter().all(Value::is_object)))
    {
        e.push(FieldError::new("actions", "invalid", "actions must be an array of at most 10 objects"));
    }
    if c.badge.as_ref().is_some_and(|b| !(b.is_u64() || b.is_string())) {
        e.push(FieldError::new("badge", "invalid_type", "badge must be a number (APNs) or an icon URL (Web Push)"));
    }
    let o = &req.options;
    if o.ttl > MAX_TTL {
        e.push(FieldError::new("ttl", "out_of_range", format!("ttl must be at most {MAX_TTL} seconds (4 weeks)")));
    }
    if let Some(k) = &o.collapse_key
        && (k.is_empty() || k.len() > 32 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        e.push(FieldError::new("collapse_key", "invalid", "collapse_key must be 1-32 base64url characters"));
    }
    if o.priority.as_deref().is_some_and(|p| p != "high" && p != "normal") {
        e.push(FieldError::new("priority", "invalid", "priority must be high or normal"));
    }
    for (field, value) in [("apns", &o.apns), ("fcm", &o.fcm), ("web_push", &o.web_push)] {
        if value.as_ref().is_some_and(|v| !v.is_object()) {
            e.push(FieldError::new(field, "invalid_type", format!("{field} must be an object")));
        }
    }
    validate_target(&req.to, &mut e);
    e
}

fn validate_target(to: &SendTarget, e: &mut Vec<FieldError>) {
    match to {
        SendTarget::User(u) => {
            if let Err(err) = crate::validate::external_id("to.user", u) {
                e.push(err);
            }
        }
        SendTarget::Users(users) => {
            if users.is_empty() || users.len() > MAX_USERS {
                e.push(FieldError::new("to.users", "out_of_range", format!("to.users must list 1-{MAX_USERS} users")));
            }
            for (i, u) in users.iter().enumerate() {
                if let Err(err) = crate::validate::external_id(&format!("to.users[{i}]"), u) {
                    e.push(err);
                }
            }
        }
        SendTarget::Topic(t) => {
            if let Err(err) = crate::validate::topic_name("to.topic", t) {
                e.push(err);
            }
        }
        SendTarget::Subscription(_) | SendTarget::Channel(_) => {}
    }
}

impl Service {
    /// Accepts a notification: validates, resolves its audience, checks every provider's payload
    /// limit, and commits the notification with its delivery rows before answering. Broadcasts
    /// commit the notification alone and fan out in the background.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn send_notification(&self, account_id: i64, req: SendRequest) -> Result<SendAccepted, ServiceError> {
        let errors = validate(&req);
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        if let Some(key) = &req.idempotency_key
            && let Some(replay) = self.replay(account_id, key, &req.request_fingerprint).await?
        {
            return Ok(replay);
        }
        let channel_types = self.check_channel_filter(account_id, &req.channels).await?;
        let (deliveries, inbox_users) = self.resolve_direct(account_id, &req).await?;
        self.check_payloads(&req, &deliveries, &channel_types)?;
        self.check_declarative(account_id, &req).await?;
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let send_at = req.send_at.unwrap_or(now).max(now);
        let accepted = if req.to.is_broadcast() {
            SendAccepted { id: id.clone(), deliveries: None, fanout: Some("pending".into()) }
        } else {
            SendAccepted { id: id.clone(), deliveries: Some(deliveries.len() as u64), fanout: None }
        };
        let response = serde_json::to_value(&accepted).expect("serialisable");
        let new = NewNotification {
            id,
            account_id,
            target: req.to.to_json(),
            content: serde_json::to_value(&req.content).expect("serialisable"),
            options: serde_json::to_value(&req.options).expect("serialisable"),
            channel_filter: req.channels.clone(),
            idempotency_key: req.idempotency_key.clone(),
            request_hash: Some(fingerprint_hash(&req.request_fingerprint)),
            response: response.clone(),
            broadcast: req.to.is_broadcast(),
            created_at: now,
            send_at,
            expires_at: send_at + i64::from(req.options.ttl) * 1000,
        };
        match self.store.insert_notification(&new, &deliveries, &inbox_users).await {
            Ok(()) => {}
            // Lost a race with the same idempotency key: answer as the winner did.
            Err(StoreError::Conflict(_)) if req.idempotency_key.is_some() => {
                let key = req.idempotency_key.as_deref().unwrap_or_default();
                if let Some(replay) = self.replay(account_id, key, &req.request_fingerprint).await? {
                    return Ok(replay);
                }
            }
            Err(e) => return Err(e.into()),
        }
        crate::delivery::engine::wake_all(&self.wake);
        Ok(accepted)
    }

    /// The first answer to an idempotent send, when `key` was used in the window.
    async fn replay(
        &self,
        account_id: i64,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<SendAccepted>, ServiceError> {
        let since = now_ms() - crate::outbox::IDEMPOTENCY_WINDOW_MS;
        let Some((hash, response)) = self.store.find_idempotent(account_id, key, since).await? else { return Ok(None) };
        if hash != fingerprint_hash(fingerprint) {
            return Err(ServiceError::Conflict {
                message: "this Idempotency-Key was used with a different request".into(),
                idempotency_key: Some(key.to_string()),
                current_status: None,
            });
        }
        let accepted = serde_json::from_value(response)
            .map_err(|e| StoreError::Corrupt(format!("stored idempotent answer: {e}")))?;
        Ok(Some(accepted))
    }

    /// Validates the channel filter and returns the channel types the send may reach.
    async fn check_channel_filter(
        &self,
        account_id: i64,
        filter: &Option<Vec<String>>,
    ) -> Result<BTreeSet<ChannelType>, ServiceError> {
        let channels = self.store.list_channels(account_id).await?;
        let mut types = BTreeSet::new();
        for c in &channels {
            if filter.as_ref().is_none_or(|f| f.iter().any(|x| x == &c.id || x == c.channel_type.as_str())) {
                types.insert(c.channel_type);
            }
        }
        if let Some(f) = filter {
            for (i, x) in f.iter().enumerate() {
                if ChannelType::parse(x).is_none() && !channels.iter().any(|c| &c.id == x) {
                    return Err(ServiceError::invalid(
                        &format!("channels[{i}]"),
                        "invalid",
                        "not a channel type or one of the account's channel ids",
                    ));
                }
            }
        }
        Ok(types)
    }

    /// For direct sends: the delivery rows and inbox users. Broadcasts resolve nothing here.
    async fn resolve_direct(
        &self,
        account_id: i64,
        req: &SendRequest,
    ) -> Result<(Vec<NewDelivery>, Vec<i64>), ServiceError> {
        let subs: Vec<Subscription> = match &req.to {
            SendTarget::User(u) => {
                let user = self.get_user(account_id, u).await?;
                let subs = self.store.subscriptions_of_users(account_id, std::slice::from_ref(u)).await?;
                return Ok((to_rows(&subs, &req.channels), vec![user.id]));
            }
            SendTarget::Users(users) => self.store.subscriptions_of_users(account_id, users).await?,
            SendTarget::Subscription(id) => {
                let sub = self.get_subscription(account_id, *id, None).await?;
                if sub.status != SubscriptionStatus::Active {
                    return Err(ServiceError::Conflict {
                        message: "the subscription is inactive".into(),
                        idempotency_key: None,
                        current_status: Some(sub.status.as_str().into()),
                    });
                }
                vec![sub]
            }
            SendTarget::Topic(_) => return Ok((Vec::new(), Vec::new())),
            SendTarget::Channel(id) => {
                self.channel(account_id, id).await?;
                return Ok((Vec::new(), Vec::new()));
            }
        };
        let mut users: Vec<i64> = subs.iter().map(|s| s.user_id).collect();
        users.sort_unstable();
        users.dedup();
        Ok((to_rows(&subs, &req.channels), users))
    }

    /// A declarative Web Push (Safari's shape) must say where a click leads: the send's `url`,
    /// else the `default_url` of every Web Push channel it may reach. (Channels set to the
    /// declarative format cannot exist without a `default_url`.)
    async fn check_declarative(&self, account_id: i64, req: &SendRequest) -> Result<(), ServiceError> {
        let flag = req.options.web_push.as_ref().and_then(|w| w.get("declarative"));
        match flag {
            None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(()),
            Some(Value::Bool(true)) => {}
            Some(_) => {
                return Err(ServiceError::invalid(
                    "web_push.declarative",
                    "invalid_type",
                    "declarative must be a boolean",
                ));
            }
        }
        if req.content.url.is_some() {
            return Ok(());
        }
        let channels = self.store.list_channels(account_id).await?;
        let lacking = channels.iter().filter(|c| c.channel_type == ChannelType::WebPush).any(|c| {
            let reached = crate::delivery::passes_channel_filter(&req.channels, &c.id, c.channel_type.as_str());
            reached && !c.config.get("default_url").is_some_and(Value::is_string)
        });
        if lacking {
            return Err(ServiceError::invalid(
                "url",
                "required",
                "a declarative Web Push needs a url to navigate to: pass url or set the channel's default_url",
            ));
        }
        Ok(())
    }

    /// Refuses content too large for any provider it may reach, naming the provider.
    fn check_payloads(
        &self,
        req: &SendRequest,
        rows: &[NewDelivery],
        types: &BTreeSet<ChannelType>,
    ) -> Result<(), ServiceError> {
        let reach: BTreeSet<ChannelType> =
            if req.to.is_broadcast() { types.clone() } else { rows.iter().map(|d| d.channel_type).collect() };
        for channel_type in reach {
            if let Some(provider) = self.providers.get(&channel_type)
                && let Err(message) = provider.check_payload(&req.content, &req.options, SubscriptionKind::Standard)
            {
                return Err(ServiceError::invalid("content", "payload_too_large", message));
            }
        }
        Ok(())
    }

    /// A notification with its status counts and a page of its deliveries.
    pub async fn get_notification(
        &self,
        account_id: i64,
        id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Value, ServiceError> {
        let n = self
            .store
            .get_notification(account_id, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("notification", id))?;
        let counts = self.store.delivery_counts(id).await?;
        let (displayed, clicked) = self.store.receipt_counts(id).await?;
        let filter = DeliveryFilter {
            account_id,
            notification_id: Some(id.into()),
            after_id: after,
            limit: limit + 1,
            ..Default::default()
        };
        let page = super::paginate(self.store.list_deliveries(&filter).await?, limit, |d| d.id);
        let mut view = notification_view(&n);
        view["counts"] = counts_view(&counts);
        view["counts"]["displayed"] = json!(displayed);
        view["counts"]["clicked"] = json!(clicked);
        view["deliveries"] = serde_json::to_value(&page.items).expect("serialisable");
        view["next_cursor"] = json!(page.next_cursor);
        Ok(view)
    }

    /// The account's notifications, newest first.
    pub async fn list_notifications(
        &self,
        account_id: i64,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Value>, Option<String>), ServiceError> {
        let before = cursor
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.split_once('_')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                    .ok_or_else(|| ServiceError::invalid_param("cursor", "cursor is not valid"))
            })
            .transpose()?;
        let mut rows = self.store.list_notifications(account_id, before, limit + 1).await?;
        let next = (rows.len() > limit as usize).then(|| {
            rows.truncate(limit as usize);
            rows.last().map(|n| format!("{}_{}", n.created_at, n.id))
        });
        Ok((rows.iter().map(notification_view).collect(), next.flatten()))
    }

    /// Deliveries to one subscription, oldest first.
    pub async fn subscription_deliveries(
        &self,
        account_id: i64,
        id: i64,
        after: Option<i64>,
        limit: u32,
    ) -> Result<crate::model::Page<Delivery>, ServiceError> {
        self.get_subscription(account_id, id, None).await?;
        let filter = DeliveryFilter {
            account_id,
            subscription_id: Some(id),
            after_id: after,
            limit: limit + 1,
            ..Default::default()
        };
        Ok(super::paginate(self.store.list_deliveries(&filter).await?, limit, |d| d.id))
    }

    /// A user's inbox, newest first.
    pub async fn inbox(
        &self,
        account_id: i64,
        user: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<Value>, Option<String>), ServiceError> {
        let mut rows = self.store.list_inbox(account_id, user, before, limit + 1).await?;
        let next = (rows.len() > limit as usize).then(|| {
            rows.truncate(limit as usize);
            rows.last().map(|i| i.id.to_string())
        });
        Ok((rows.iter().map(inbox_view).collect(), next.flatten()))
    }

    /// Marks a notification read for a user; 404 when it is not in their inbox.
    pub async fn mark_read(&self, account_id: i64, user: &str, notification_id: &str) -> Result<Value, ServiceError> {
        let item = self.store.mark_read(account_id, user, notification_id, now_ms()).await?;
        item.map(|i| inbox_view(&i)).ok_or_else(|| ServiceError::not_found("notification", notification_id))
    }
}

fn to_rows(subs: &[Subscription], filter: &Option<Vec<String>>) -> Vec<NewDelivery> {
    subs.iter()
        .filter(|s| crate::delivery::passes_channel_filter(filter, &s.channel_id, s.channel_type.as_str()))
        .map(|s| NewDelivery {
            subscription_id: s.id,
            user_id: s.user_id,
            channel_id: s.channel_id.clone(),
            channel_type: s.channel_type,
            muted: s.muted,
        })
        .collect()
}

fn fingerprint_hash(fingerprint: &str) -> String {
    crate::validate::to_b64url(&crate::keys::hash(fingerprint))
}

/// Renders a notification for the native API.
pub fn notification_view(n: &Notification) -> Value {
    let mut v = json!({
        "id": n.id,
        "to": n.target,
        "content": n.content,
        "options": n.options,
        "channels": n.channel_filter,
        "created_at": rfc3339(n.created_at),
        "send_at": rfc3339(n.send_at),
        "expires_at": rfc3339(n.expires_at),
    });
    if n.fanout_status != FanoutStatus::None {
        v["fanout"] = json!({"status": n.fanout_status, "deliveries": n.fanout_count});
    }
    v
}

fn counts_view(counts: &[(DeliveryStatus, i64)]) -> Value {
    let mut map = serde_json::Map::new();
    for status in DeliveryStatus::ALL {
        map.insert(status.as_str().into(), json!(counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)));
    }
    map.insert("total".into(), json!(counts.iter().map(|(_, n)| n).sum::<i64>()));
    Value::Object(map)
}

fn inbox_view(i: &crate::model::InboxItem) -> Value {
    let mut v = serde_json::to_value(&i.content).expect("serialisable");
    v["id"] = json!(i.notification_id);
    v["created_at"] = json!(rfc3339(i.created_at));
    v["read_at"] = json!(i.read_at.map(rfc3339));
    v
}
