//! Configuration: one commented default file embedded in the binary, then an optional
//! `herald.toml`, then `HERALD_*` environment variables. Validated once at start-up, with
//! errors that name the setting.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use herald_core::secrets::MasterKey;
use serde::Deserialize;

/// The commented default configuration, also printed by `herald config`.
pub const DEFAULT_CONFIG: &str = include_str!("../herald.default.toml");

/// Herald's settings. See `herald.default.toml` for what each one means.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub public_url: String,
    pub admin_token: String,
    pub secret_key: String,
    pub secret_key_previous: String,
    pub outbound_allow: String,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub rate_limit_per_minute: u32,
    pub auth_failures_per_minute: u32,
    pub workers: bool,
    pub delivery_batch: u32,
    pub delivery_max_in_flight: usize,
    pub delivery_per_host: usize,
    pub delivery_lease_seconds: u64,
    pub delivery_max_attempts: u32,
    pub delivery_retry_base_ms: u64,
    pub delivery_retry_max_seconds: u64,
    pub delivery_poll_ms: u64,
    pub provider_timeout_ms: u64,
    pub shutdown_grace_seconds: u64,
    pub node_timeout_seconds: u64,
    pub metrics_listen: String,
    pub webhook_retry_base_ms: u64,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

// Secrets never reach logs, not even through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("public_url", &self.public_url)
            .field("admin_token", &redact(&self.admin_token))
            .field("secret_key", &redact(&self.secret_key))
            .field("secret_key_previous", &redact(&self.secret_key_previous))
            .field("outbound_allow", &self.outbound_allow)
            .finish_non_exhaustive()
    }
}

fn redact(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Every setting's name, as in the file and (upper-cased, `HERALD_`-prefixed) the environment.
const SETTINGS: &[&str] = &[
    "listen",
    "database_url",
    "database_max_connections",
    "public_url",
    "admin_token",
    "secret_key",
    "secret_key_previous",
    "outbound_allow",
    "max_body_bytes",
    "log_format",
    "rate_limit_per_minute",
    "auth_failures_per_minute",
    "workers",
    "delivery_batch",
    "delivery_max_in_flight",
    "delivery_per_host",
    "delivery_lease_seconds",
    "delivery_max_attempts",
    "delivery_retry_base_ms",
    "delivery_retry_max_seconds",
    "delivery_poll_ms",
    "provider_timeout_ms",
    "shutdown_grace_seconds",
    "node_timeout_seconds",
    "metrics_listen",
    "webhook_retry_base_ms",
];

impl Config {
    /// The embedded defaults alone, ignoring files and environment (for tests and tools).
    pub fn defaults() -> Config {
        Figment::from(Toml::string(DEFAULT_CONFIG)).extract().expect("the embedded default configuration is valid")
    }

    /// Loads and validates the configuration.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only known settings are taken from the environment: other HERALD_* variables (a test
        // harness's, a wrapper script's) are not configuration and must not stop start-up.
        let env = Env::prefixed("HERALD_").only(SETTINGS);
        let config: Config = figment.merge(env).extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.database_url.trim().is_empty() {
            return Err("invalid setting `database_url`: must not be empty".into());
        }
        if !self.public_url.is_empty() {
            let ok = url::Url::parse(&self.public_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(format!("invalid setting `public_url`: {:?} is not an http(s) URL", self.public_url));
            }
        }
        if !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return Err("invalid setting `admin_token`: use at least 16 characters".into());
        }
        self.master_keys()?;
        if self.database_max_connections == 0 {
            return Err("invalid setting `database_max_connections`: must be at least 1".into());
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<SocketAddr>().is_err() {
            return Err(format!(
                "invalid setting `metrics_listen`: {:?} is not an address such as 10.0.0.5:9090",
                self.metrics_listen
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err("invalid setting `max_body_bytes`: must be at least 1024".into());
        }
        let positive = [
            ("rate_limit_per_minute", self.rate_limit_per_minute as u64),
            ("auth_failures_per_minute", self.auth_failures_per_minute as u64),
            ("delivery_batch", self.delivery_batch as u64),
            ("delivery_max_in_flight", self.delivery_max_in_flight as u64),
            ("delivery_per_host", self.delivery_per_host as u64),
            ("delivery_max_attempts", self.delivery_max_attempts as u64),
            ("delivery_poll_ms", self.delivery_poll_ms),
            ("provider_timeout_ms", self.provider_timeout_ms),
            ("node_timeout_seconds", self.node_timeout_seconds),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("invalid setting `{name}`: must be at least 1"));
        }
        if self.delivery_lease_seconds * 1000 <= self.provider_timeout_ms {
            return Err("invalid setting `delivery_lease_seconds`: must exceed provider_timeout_ms".into());
        }
        herald_providers::ssrf::parse_networks(&self.outbound_allow)
            .map_err(|e| format!("invalid setting `outbound_allow`: {e}"))?;
        Ok(())
    }

    /// The delivery engine's tuning.
    pub fn engine(&self) -> herald_core::delivery::engine::EngineConfig {
        use std::time::Duration;
        herald_core::delivery::engine::EngineConfig {
            batch: self.delivery_batch,
            max_in_flight: self.delivery_max_in_flight,
            per_host: self.delivery_per_host,
            lease: Duration::from_secs(self.delivery_lease_seconds),
            max_attempts: self.delivery_max_attempts,
            retry_base: Duration::from_millis(self.delivery_retry_base_ms),
            retry_max: Duration::from_secs(self.delivery_retry_max_seconds),
            poll: Duration::from_millis(self.delivery_poll_ms),
            fanout_batch: 1000,
        }
    }

    /// The configured master keys, current and previous, when set.
    pub fn master_keys(&self) -> Result<(Option<MasterKey>, Option<MasterKey>), String> {
        let parse = |name: &str, value: &str| {
            let value = value.trim();
            (!value.is_empty())
                .then(|| MasterKey::parse(value))
                .transpose()
                .map_err(|e| format!("invalid setting `{name}`: {e} (`herald secrets generate` prints a key)"))
        };
        Ok((parse("secret_key", &self.secret_key)?, parse("secret_key_previous", &self.secret_key_previous)?))
    }

    /// The public base URL without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

fn describe(e: figment::Error) -> String {
    let path = e.path.join(".");
    if path.is_empty() {
        format!("invalid configuration: {e}")
    } else {
        format!("invalid setting `{path}`: {}", e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Env filtering is checked through figment directly, since `std::env::set_var` is unsafe
    /// in a multi-threaded test binary and the crate forbids `unsafe`.
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn unsafe_free_env_check() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_TEST_PG_URL", "postgres://elsewhere/test");
            jail.set_env("HERALD_LISTEN", "127.0.0.1:9999");
            let c = Config::load(None).map_err(figment::Error::from)?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
            Ok(())
        });
    }

    fn load_file(toml: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(&path, toml).unwrap();
        let result = Config::load(Some(&path));
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "./herald-data/herald.db");
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        for setting in SETTINGS {
            assert!(DEFAULT_CONFIG.contains(&format!("\n{setting} = ")), "{setting} is not in the default file");
        }
    }

    #[test]
    fn invalid_settings_are_named() {
        let cases = [
            ("listen = \"nowhere\"", "listen"),
            ("public_url = \"ftp://x\"", "public_url"),
            ("admin_token = \"short\"", "admin_token"),
            ("outbound_allow = \"10.0.0.0/99\"", "outbound_allow"),
            ("max_body_bytes = \"big\"", "max_body_bytes"),
            ("log_format = \"xml\"", "log_format"),
            ("colour = \"blue\"", "colour"),
            ("secret_key = \"c2hvcnQ=\"", "secret_key"),
            ("secret_key_previous = \"not base64!\"", "secret_key_previous"),
        ];
        for (toml, setting) in cases {
            let err = load_file(toml).unwrap_err();
            assert!(err.contains(setting), "{toml}: {err}");
        }
        assert!(Config::load(Some(Path::new("/no/such/herald.toml"))).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn unrelated_herald_variables_are_ignored() {
        unsafe_free_env_check();
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let mut c = Config::defaults();
        c.admin_token = "super-secret-admin-token".into();
        c.database_url = "postgres://herald:hunter2@db/herald".into();
        c.secret_key = herald_core::secrets::generate_key();
        c.secret_key_previous = herald_core::secrets::generate_key();
        let shown = format!("{c:?}");
        assert!(!shown.contains("super-secret") && !shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&c.secret_key) && !shown.contains(&c.secret_key_previous), "{shown}");
    }
}
