//! Channels: one provider configuration each. Secrets are validated on the way in and never
//! rendered on the way out.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Service, new_id};
use crate::clock::rfc3339;
use crate::error::{FieldError, ServiceError};
use crate::keys;
use crate::model::{Channel, ChannelHealth, ChannelType, Environment};
use crate::store::{ChannelPatch, NewChannel};
use crate::validate::{EndpointPolicy, MAX_NAME, required_str};

/// Config keys that hold secrets and never leave the server.
const SECRET_KEYS: &[&str] = &["vapid_private_key", "private_key", "callback_auth"];

/// A channel create or update request.
#[derive(Debug, Clone, Default)]
pub struct ChannelInput {
    pub name: Option<String>,
    pub channel_type: Option<ChannelType>,
    pub config: Option<Value>,
    pub is_default: Option<bool>,
}

/// A channel as the API shows it: public configuration only, never a secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    pub is_default: bool,
    /// The configuration without its secrets.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Web Push only: the VAPID public key browsers pass as `applicationServerKey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vapid_public_key: Option<String>,
    pub health: ChannelHealth,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        let mut config = c.config.as_object().cloned().unwrap_or_default();
        for k in SECRET_KEYS {
            config.remove(*k);
        }
        if let Some(Value::Object(sa)) = config.get_mut("service_account") {
            sa.retain(|k, _| matches!(k.as_str(), "project_id" | "client_email" | "token_uri"));
        }
        let vapid_public_key = config.remove("vapid_public_key").and_then(|v| v.as_str().map(str::to_string));
        ChannelView {
            id: c.id.clone(),
            name: c.name.clone(),
            channel_type: c.channel_type,
            is_default: c.is_default,
            config: Value::Object(config),
            vapid_public_key,
            health: c.health,
            last_error: c.last_error.clone(),
            last_error_at: c.last_error_at.map(rfc3339),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

impl Service {
    /// A live channel of the account, else 404.
    pub async fn channel(&self, account_id: i64, id: &str) -> Result<Channel, ServiceError> {
        self.store.get_channel(account_id, id).await?.ok_or_else(|| ServiceError::not_found("channel", id))
    }

    /// Creates a channel; a Web Push channel gets a fresh VAPID key pair.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn create_channel(&self, account_id: i64, input: ChannelInput) -> Result<Channel, ServiceError> {
        let mut errors = Vec::new();
        let name = required_str(&mut errors, "name", input.name.as_deref(), MAX_NAME).map(str::to_string);
        if input.channel_type.is_none() {
            errors.push(FieldError::required("type"));
        }
        let config = match (input.channel_type, input.config.unwrap_or_else(|| json!({}))) {
            (Some(t), raw) => validate_config(t, raw, None, self.endpoints.as_ref()).map_err(|e| errors.extend(e)).ok(),
            (None, _) => None,
        };
        let (Some(name), Some(channel_type), Some(config), true) =
            (name, input.channel_type, config, errors.is_empty())
        else {
            return Err(ServiceError::Validation(errors));
        };
        let channel = NewChannel { id: new_id(), account_id, name, channel_type, config };
        let created = self.store.insert_channel(&channel).await?;
        if input.is_default == Some(true) && !created.is_default {
            let patch = ChannelPatch { make_default: true, ..Default::default() };
            return self
                .store
                .update_channel(account_id, &created.id, &patch)
                .await?
                .ok_or_else(|| ServiceError::not_found("channel", &created.id));
        }
        Ok(created)
    }

    /// The account's live channels.
    pub async fn list_channels(&self, account_id: i64) -> Result<Vec<Channel>, ServiceError> {
        Ok(self.store.list_channels(account_id).await?)
    }

    /// Renames, reconfigures (merging into the stored config, secrets kept unless replaced) or
    /// makes a channel its type's default.
    #[tracing::instrument(skip_all, fields(account = account_id, channel = id))]
    pub async fn update_channel(
        &self,
        account_id: i64,
        id: &str,
        input: ChannelInput,
    ) -> Result<Channel, ServiceError> {
        let current = self.channel(account_id, id).await?;
        let mut errors = Vec::new();
        if let Some(name) = &input.name {
            required_str(&mut errors, "name", Some(name), MAX_NAME);
        }
        if input.channel_type.is_some_and(|t| t != current.channel_type) {
            errors.push(FieldError::new("type", "immutable", "a channel's type cannot change"));
        }
        if input.is_default == Some(false) {
            errors.push(FieldError::new("is_default", "invalid", "make another channel the default instead"));
        }
        let config = match input.config {
            Some(raw) => validate_config(current.channel_type, raw, Some(&current.config), self.endpoints.as_ref())
                .map_err(|e| errors.extend(e))
                .ok(),
            None => None,
        };
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let patch = ChannelPatch { name: input.name, config, make_default: input.is_default == Some(true) };
        self.store.update_channel(account_id, id, &patch).await?.ok_or_else(|| ServiceError::not_found("channel", id))
    }

    /// Deletes a channel and deactivates its subscriptions.
    #[tracing::instrument(skip_all, fields(account = account_id, channel = id))]
    pub async fn delete_channel(&self, account_id: i64, id: &str) -> Result<(), ServiceError> {
        match self.store.delete_channel(account_id, id).await? {
            true => Ok(()),
            false => Err(ServiceError::not_found("channel", id)),
        }
    }
}

/// Validates a channel's configuration for its type. On update, `current` is the stored config
/// the patch is merged into, so secrets need not be sent again.
pub(crate) fn validate_config(
    channel_type: ChannelType,
    raw: Value,
    current: Option<&Value>,
    endpoints: &dyn EndpointPolicy,
) -> Result<Value, Vec<FieldError>> {
    let Value::Object(patch) = raw else {
        return Err(vec![FieldError::new("config", "invalid_type", "config must be an object")]);
    };
    let mut cfg: Map<String, Value> = current.and_then(Value::as_object).cloned().unwrap_or_default();
    for (k, v) in patch {
        if k == "vapid_private_key" || k == "vapid_public_key" {
            continue; // generated by Herald, never accepted from a caller
        }
        cfg.insert(k, v);
    }
    let mut errors = Vec::new();
    if let Some(endpoint) = cfg.get("endpoint").filter(|v| !v.is_null()) {
        match endpoint.as_str() {
            Some(url) => {
                if let Err(reason) = endpoints.check_provider_base(url) {
                    errors.push(FieldError::new("config.endpoint", "invalid", format!("endpoint {reason}")));
                }
            }
            None => errors.push(FieldError::new("config.endpoint", "invalid_type", "config.endpoint must be a string")),
        }
    }
    // bnotify-style callbacks: any channel may name a URL that hears of subscribes and
    // unsubscribes, with an `Authorization: Basic` credential (a secret, never returned).
    match cfg.get("callback_url") {
        None | Some(Value::Null) => {}
        Some(Value::String(url)) if url.len() > 2048 => errors.push(FieldError::too_long("config.callback_url", 2048)),
        Some(Value::String(url)) => {
            if let Err(reason) = endpoints.check_provider_base(url) {
                errors.push(FieldError::new("config.callback_url", "invalid", format!("callback_url {reason}")));
            }
        }
        Some(_) => {
            errors.push(FieldError::new("config.callback_url", "invalid_type", "config.callback_url must be a string"))
        }
    }
    if cfg.get("callback_auth").is_some_and(|v| !v.is_null() && v.as_str().is_none_or(|a| a.len() > 1024)) {
        errors.push(FieldError::new(
            "config.callback_auth",
            "invalid",
            "config.callback_auth must be a string of at most 1024 characters",
        ));
    }
    match channel_type {
        ChannelType::WebPush => web_push_config(&mut cfg, &mut errors),
        ChannelType::Apns => apns_config(&mut cfg, &mut errors),
        ChannelType::Fcm => fcm_config(&mut cfg, &mut errors, endpoints),
    }
    if errors.is_empty() { Ok(Value::Object(cfg)) } else { Err(errors) }
}

/// An optional string setting: `None` when absent or null, an error when not a string.
fn opt_str<'a>(cfg: &'a Map<String, Value>, key: &str, errors: &mut Vec<FieldError>, path: &str) -> Option<&'a str> {
    match cfg.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(FieldError::new(path, "invalid_type", format!("{path} must be a string")));
            None
        }
    }
}

fn get_str<'a>(cfg: &'a Map<String, Value>, key: &str, errors: &mut Vec<FieldError>, path: &str) -> Option<&'a str> {
    match cfg.get(key) {
        None | Some(Value::Null) => {
            errors.push(FieldError::required(path));
            None
        }
        Some(Value::String(s)) if s.is_empty() => {
            errors.push(FieldError::required(path));
            None
        }
        Some(Value::String(s)) if s.len() > 64 * 1024 => {
            errors.push(FieldError::too_long(path, 64 * 1024));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(FieldError::new(path, "invalid_type", format!("{path} must be a string")));
            None
        }
    }
}

fn web_push_config(cfg: &mut Map<String, Value>, errors: &mut Vec<FieldError>) {
    if let Some(subject) = get_str(cfg, "subject", errors, "config.subject") {
        let ok = (subject.starts_with("mailto:") && subject.len() > 7)
            || url::Url::parse(subject).is_ok_and(|u| u.scheme() == "https");
        if !ok || subject.len() > MAX_NAME {
            errors.push(FieldError::new(
                "config.subject",
                "invalid",
                "subject must be a mailto: or https: URL (RFC 8292)",
            ));
        }
    }
    // Where a click leads when a send names no url; required by declarative pushes.
    if let Some(url) = opt_str(cfg, "default_url", errors, "config.default_url")
        && (url.len() > crate::validate::MAX_ENDPOINT
            || !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http")))
    {
        errors.push(FieldError::new("config.default_url", "invalid", "default_url must be an http(s) URL"));
    }
    match opt_str(cfg, "payload_format", errors, "config.payload_format") {
        None | Some("herald") => {}
        Some("declarative") if cfg.get("default_url").is_some_and(Value::is_string) => {}
        Some("declarative") => errors.push(FieldError::new(
            "config.default_url",
            "required",
            "declarative pushes need a url to navigate to: set default_url",
        )),
        Some(_) => errors.push(FieldError::new(
            "config.payload_format",
            "invalid",
            "payload_format must be herald or declarative",
        )),
    }
    if !cfg.contains_key("vapid_private_key") {
        let pair = keys::generate_vapid();
        cfg.insert("vapid_private_key".into(), pair.private_pkcs8_b64.into());
        cfg.insert("vapid_public_key".into(), pair.public_key_b64url.into());
    }
}

fn is_apple_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn apns_config(cfg: &mut Map<String, Value>, errors: &mut Vec<FieldError>) {
    for key in ["team_id", "key_id"] {
        let path = format!("config.{key}");
        if let Some(v) = get_str(cfg, key, errors, &path)
            && !is_apple_id(v)
        {
            errors.push(FieldError::new(path, "invalid", format!("{key} must be 10 letters or digits")));
        }
    }
    if let Some(pem) = get_str(cfg, "private_key", errors, "config.private_key")
        && !keys::is_p256_pkcs8_pem(pem)
    {
        errors.push(FieldError::new("config.private_key", "invalid", "private_key must be the .p8 PEM of a P-256 key"));
    }
    if let Some(bundle) = get_str(cfg, "bundle_id", errors, "config.bundle_id") {
        let ok = bundle.len() <= MAX_NAME && bundle.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !ok {
            errors.push(FieldError::new("config.bundle_id", "invalid", "bundle_id must be a reverse-DNS app id"));
        }
    }
    match cfg.get("environment") {
        None | Some(Value::Null) => {
            cfg.insert("environment".into(), Environment::Production.as_str().into());
        }
        Some(Value::String(e)) if Environment::parse(e).is_some() => {}
        Some(_) => errors.push(FieldError::new(
            "config.environment",
            "invalid",
            format!("environment must be one of {}", Environment::expected()),
        )),
    }
}

fn fcm_config(cfg: &mut Map<String, Value>, errors: &mut Vec<FieldError>, endpoints: &dyn EndpointPolicy) {
    // Google hands out the service account as a JSON file; accept it as an object or a string.
    if let Some(Value::String(s)) = cfg.get("service_account")
        && let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(s)
    {
        cfg.insert("service_account".into(), parsed);
    }
    let Some(Value::Object(sa)) = cfg.get("service_account") else {
        let reason = if cfg.contains_key("service_account") { "invalid_type" } else { "required" };
        errors.push(FieldError::new(
            "config.service_account",
            reason,
            "service_account must be the service-account JSON object",
        ));
        return;
    };
    for key in ["project_id", "client_email"] {
        get_str(sa, key, errors, &format!("config.service_account.{key}"));
    }
    if let Some(pem) = get_str(sa, "private_key", errors, "config.service_account.private_key")
        && !keys::is_rsa_pkcs8_pem(pem)
    {
        errors.push(FieldError::new(
            "config.service_account.private_key",
            "invalid",
            "private_key must be a PEM RSA private key",
        ));
    }
    if let Some(uri) = get_str(sa, "token_uri", errors, "config.service_account.token_uri")
        && let Err(reason) = endpoints.check_provider_base(uri)
    {
        errors.push(FieldError::new("config.service_account.token_uri", "invalid", format!("token_uri {reason}")));
    }
}
