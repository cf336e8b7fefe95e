//! The domain model of DESIGN.md section 2, as the service layer sees it.

use serde::Serialize;
use serde_json::Value;

use crate::clock::{Millis, serde_rfc3339};

/// Declares a string-backed enum with its wire name, parsing and `Display`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and storage name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted names, for error messages.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Whether an account's keys work.
    AccountStatus { Active => "active", Paused => "paused" }
);
string_enum!(
    /// What an API key may do (DESIGN.md section 3).
    KeyKind { Secret => "secret", Public => "public", Channel => "channel" }
);
string_enum!(
    /// Algorithms accepted for user JWT signing keys.
    SigningAlgorithm { Rs256 => "RS256", Es256 => "ES256" }
);
string_enum!(
    /// The push service a channel speaks.
    ChannelType { WebPush => "web_push", Apns => "apns", Fcm => "fcm" }
);
string_enum!(
    /// `voip` subscriptions are APNs PushKit tokens.
    SubscriptionKind { Standard => "standard", Voip => "voip" }
);
string_enum!(
    /// APNs host selection.
    Environment { Production => "production", Sandbox => "sandbox" }
);
string_enum!(
    /// Whether a subscription receives pushes.
    SubscriptionStatus { Active => "active", Inactive => "inactive" }
);
string_enum!(
    /// A channel's health, set by the delivery engine on configuration errors.
    ChannelHealth { Healthy => "healthy", Unhealthy => "unhealthy" }
);

impl KeyKind {
    /// The visible prefix of a key of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk_",
            KeyKind::Public => "pk_",
            KeyKind::Channel => "ck_",
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub status: AccountStatus,
    pub dev_mode: bool,
    /// Requests per minute per credential; `null` means the server default.
    pub rate_limit_per_minute: Option<i64>,
    /// What the account lets its clients (browsers, apps) do.
    #[serde(flatten)]
    pub policy: AccountPolicy,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
}

/// What an account lets its clients (public key + user token, sessions, the client-side
/// compatible surfaces) do beyond authenticating: which topics they may put their own
/// subscriptions on. The backend (secret key) is never confined by it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccountPolicy {
    /// Topic prefixes only the backend may add (`chat:` is always reserved: a chat's topic is
    /// added only through its own client's chat surface).
    #[serde(default)]
    pub reserved_topic_prefixes: Vec<String>,
    /// When set, the only topics clients may add: patterns in which `*` matches any run of
    /// characters (`news.*`, `team:*:alerts`). `null`: any topic that is not reserved.
    #[serde(default)]
    pub client_topic_patterns: Option<Vec<String>>,
    /// Origins whose pages may call the client surfaces from a browser (CORS), e.g.
    /// `https://app.example.com`; `null`: any origin. Cookie-identified calls (Bright Pattern's
    /// WebChat) are allowed only from origins listed here.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
}

/// Topic prefix of Bright Pattern chats, reserved for the chat surface.
pub const CHAT_TOPIC_PREFIX: &str = "chat:";

impl AccountPolicy {
    /// Whether a page of `origin` may call the client surfaces for this account.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.as_ref().is_none_or(|list| list.iter().any(|o| o.eq_ignore_ascii_case(origin)))
    }

    /// Whether `origin` is listed by name (what cookie-identified calls need).
    pub fn lists_origin(&self, origin: &str) -> bool {
        self.allowed_origins.as_ref().is_some_and(|list| list.iter().any(|o| o.eq_ignore_ascii_case(origin)))
    }

    /// Whether a client may put its own subscription on `topic`.
    pub fn client_may_add_topic(&self, topic: &str) -> bool {
        if topic.starts_with(CHAT_TOPIC_PREFIX)
            || self.reserved_topic_prefixes.iter().any(|p| topic.starts_with(p.as_str()))
        {
            return false;
        }
        self.client_topic_patterns.as_ref().is_none_or(|patterns| patterns.iter().any(|p| glob(p, topic)))
    }
}

/// `*`-only glob matching (no other metacharacters), iterative so no input can recurse deeply.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn clients_never_add_reserved_topics() {
        let open = AccountPolicy::default();
        assert!(open.client_may_add_topic("news"));
        assert!(!open.client_may_add_topic("chat:123"));
        let strict = AccountPolicy {
            reserved_topic_prefixes: vec!["admin.".into()],
            client_topic_patterns: Some(vec!["news.*".into(), "team:*:alerts".into()]),
            allowed_origins: None,
        };
        assert!(strict.client_may_add_topic("news.sport"));
        assert!(strict.client_may_add_topic("team:7:alerts"));
        assert!(!strict.client_may_add_topic("team:7:billing"));
        assert!(!strict.client_may_add_topic("weather"));
        assert!(!strict.client_may_add_topic("admin.x"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "ac"));
    }
}

/// An API key as stored: never the key itself, only its prefix and hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    #[serde(skip)]
    pub account_id: i64,
    pub kind: KeyKind,
    /// The first characters of the key, enough to recognise it.
    pub prefix: String,
    #[serde(skip)]
    pub key_hash: Vec<u8>,
    pub channel_id: Option<String>,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
    #[serde(serialize_with = "serde_rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Millis>,
}

/// A public key that verifies the account's user JWTs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SigningKey {
    /// Also the JWT `kid` that selects this key.
    pub id: String,
    #[serde(skip)]
    pub account_id: i64,
    pub algorithm: SigningAlgorithm,
    pub public_key_pem: String,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
}

/// An end user of an account, known by the app's own id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub account_id: i64,
    /// The app's own user id.
    #[serde(rename = "id")]
    pub external_id: String,
    #[schema(value_type = Object)]
    pub properties: Value,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Millis,
}

/// A user session minted by the account's backend.
#[derive(Debug, Clone)]
pub struct Session {
    pub account_id: i64,
    pub user_id: i64,
    pub external_id: String,
    pub expires_at: Millis,
}

/// A push channel: one provider configuration of an account.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub channel_type: ChannelType,
    /// Full configuration including secrets; render with [`crate::validate::public_config`].
    pub config: Value,
    pub is_default: bool,
    pub health: ChannelHealth,
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A registered browser or device.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: i64,
    pub account_id: i64,
    pub user_id: i64,
    pub external_id: String,
    pub channel_id: String,
    pub channel_type: ChannelType,
    pub identifier: String,
    pub settings: Value,
    pub kind: SubscriptionKind,
    pub environment: Environment,
    pub status: SubscriptionStatus,
    pub inactive_reason: Option<String>,
    pub muted: bool,
    pub topics: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_seen_at: Millis,
}

/// One page of a cursor-paginated list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

string_enum!(
    /// Where one delivery stands.
    DeliveryStatus {
        Queued => "queued",
        Sending => "sending",
        Delivered => "delivered",
        Failed => "failed",
        Expired => "expired",
        SkippedMuted => "skipped_muted",
    }
);
string_enum!(
    /// Progress of a broadcast's fan-out; direct sends have none.
    FanoutStatus { None => "none", Pending => "pending", Done => "done" }
);

impl DeliveryStatus {
    /// True once nothing more will happen to the delivery.
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryStatus::Queued | DeliveryStatus::Sending)
    }
}

/// A notification as sent by a backend.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: String,
    pub account_id: i64,
    pub target: Value,
    pub content: crate::delivery::Content,
    pub options: crate::delivery::Options,
    pub channel_filter: Option<Vec<String>>,
    pub idempotency_key: Option<String>,
    pub fanout_status: FanoutStatus,
    pub fanout_cursor: i64,
    pub fanout_count: i64,
    pub created_at: Millis,
    pub send_at: Millis,
    pub expires_at: Millis,
}

/// One delivery row as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: String,
    pub subscription_id: i64,
    pub channel_id: String,
    pub channel_type: ChannelType,
    /// Stable across retries (APNs `apns-id`).
    pub message_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub provider_status: Option<i64>,
    pub provider_reason: Option<String>,
    pub provider_message_id: Option<String>,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Millis,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Millis,
    #[serde(serialize_with = "serde_rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Millis>,
    /// When the device reported showing it (a receipt).
    #[serde(serialize_with = "serde_rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub displayed_at: Option<Millis>,
    /// When the user clicked it, and which action (`null`: the notification itself).
    #[serde(serialize_with = "serde_rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub clicked_at: Option<Millis>,
    pub clicked_action: Option<String>,
    /// When the user closed it without clicking.
    #[serde(serialize_with = "serde_rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub dismissed_at: Option<Millis>,
}

/// One entry of a user's inbox.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub id: i64,
    pub notification_id: String,
    pub content: crate::delivery::Content,
    pub created_at: Millis,
    pub read_at: Option<Millis>,
}
