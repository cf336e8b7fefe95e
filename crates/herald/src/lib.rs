//! The `herald` server: configuration, the HTTP surface and process lifecycle. The binary in
//! `main.rs` is a thin CLI over this library; integration tests start [`App`] directly.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod compat;
pub mod config;
pub mod http;
pub mod outbound;
pub mod secrets;

pub use app::App;
pub use config::Config;

/// Installs the tracing subscriber once (logs to stderr; `RUST_LOG` filters, default `info`).
pub fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log_format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}
