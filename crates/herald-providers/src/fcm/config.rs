//! An FCM channel's configuration, read from `Channel.config` without copying.

use serde_json::Value;

/// Google's FCM HTTP v1 base URL.
pub const FCM_URL: &str = "https://fcm.googleapis.com";
/// Google's OAuth2 token endpoint, used when a service account omits `token_uri`.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The fields of an FCM channel config the provider uses: the service-account JSON Google
/// hands out, and an optional base URL override.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FcmConfig<'a> {
    pub project_id: &'a str,
    pub client_email: &'a str,
    /// PKCS#8 RSA PEM.
    pub private_key: &'a str,
    pub token_uri: &'a str,
    /// Base URL without a trailing slash.
    pub base_url: &'a str,
}

impl<'a> FcmConfig<'a> {
    /// Reads the config, or names the first missing field.
    pub fn parse(config: &'a Value) -> Result<Self, String> {
        let account = config.get("service_account").ok_or("FCM channel config has no service_account")?;
        let text = |value: &'a Value, name: &str| value.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let field =
            |name: &str| text(account, name).ok_or_else(|| format!("FCM channel config has no service_account.{name}"));
        Ok(Self {
            project_id: field("project_id")?,
            client_email: field("client_email")?,
            private_key: field("private_key")?,
            token_uri: text(account, "token_uri").unwrap_or(GOOGLE_TOKEN_URI),
            base_url: base_url(config),
        })
    }
}

/// The channel's `endpoint` override, else Google's host.
pub(crate) fn base_url(config: &Value) -> &str {
    config
        .get("endpoint")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or(FCM_URL, |s| s.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_reads_the_service_account() {
        let cfg = json!({"service_account": {"project_id": "p", "client_email": "e", "private_key": "k"}});
        let parsed = FcmConfig::parse(&cfg).unwrap();
        assert_eq!((parsed.project_id, parsed.token_uri, parsed.base_url), ("p", GOOGLE_TOKEN_URI, FCM_URL));
        let cfg = json!({"endpoint": "http://127.0.0.1:1/", "service_account": {
            "project_id": "p", "client_email": "e", "private_key": "k", "token_uri": "http://t/token"}});
        let parsed = FcmConfig::parse(&cfg).unwrap();
        assert_eq!((parsed.token_uri, parsed.base_url), ("http://t/token", "http://127.0.0.1:1"));
    }

    #[test]
    fn parse_names_the_missing_field() {
        assert_eq!(FcmConfig::parse(&json!({})).unwrap_err(), "FCM channel config has no service_account");
        let cfg = json!({"service_account": {"project_id": "p", "private_key": "k"}});
        assert_eq!(FcmConfig::parse(&cfg).unwrap_err(), "FCM channel config has no service_account.client_email");
    }
}
