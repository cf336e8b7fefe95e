//! An APNs channel's configuration, read from `Channel.config` without copying.

use herald_core::model::Environment;
use serde_json::Value;

/// Apple's production host.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) host.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// The fields of an APNs channel config the provider uses. The service layer validated them when
/// the channel was saved; they are checked again here because a missing field must become a
/// channel error, not a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApnsConfig<'a> {
    pub team_id: &'a str,
    pub key_id: &'a str,
    /// The `.p8` PEM (PKCS#8, P-256).
    pub private_key: &'a str,
    pub bundle_id: &'a str,
}

impl<'a> ApnsConfig<'a> {
    /// Reads the config, or names the first missing field.
    pub fn parse(config: &'a Value) -> Result<Self, String> {
        let field = |name: &str| {
            config
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("APNs channel config has no {name}"))
        };
        Ok(Self {
            team_id: field("team_id")?,
            key_id: field("key_id")?,
            private_key: field("private_key")?,
            bundle_id: field("bundle_id")?,
        })
    }
}

/// The base URL requests go to: the channel's override, else Apple's host for the subscription's
/// environment (a token minted by a development build only works against the sandbox).
pub(crate) fn base_url(config: &Value, environment: Environment) -> &str {
    match config.get("endpoint").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(endpoint) => endpoint.trim_end_matches('/'),
        None => match environment {
            Environment::Production => PRODUCTION_URL,
            Environment::Sandbox => SANDBOX_URL,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_url_follows_environment_unless_overridden() {
        let cfg = json!({"bundle_id": "com.example"});
        assert_eq!(base_url(&cfg, Environment::Production), PRODUCTION_URL);
        assert_eq!(base_url(&cfg, Environment::Sandbox), SANDBOX_URL);
        let cfg = json!({"endpoint": "http://127.0.0.1:9/"});
        assert_eq!(base_url(&cfg, Environment::Sandbox), "http://127.0.0.1:9");
    }

    #[test]
    fn parse_names_the_missing_field() {
        let cfg = json!({"team_id": "T", "key_id": "K", "private_key": "P"});
        assert_eq!(ApnsConfig::parse(&cfg).unwrap_err(), "APNs channel config has no bundle_id");
        let cfg = json!({"team_id": "T", "key_id": "K", "private_key": "P", "bundle_id": "b"});
        assert_eq!(ApnsConfig::parse(&cfg).unwrap().bundle_id, "b");
    }
}
