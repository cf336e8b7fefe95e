//! The command line: `herald serve`, `migrate`, `account create`, `channel create`,
//! `vapid generate`, `secrets generate|rotate`, `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use herald_core::Service;
use herald_core::model::ChannelType;
use herald_core::service::{ChannelInput, ChannelView};
use serde_json::{Value, json};

use crate::app::{App, chain};
use crate::config::{Config, DEFAULT_CONFIG};

/// Herald: a self-hosted push-notification server.
#[derive(Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    /// Configuration file (TOML); settings there override the defaults, HERALD_* env vars override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand)]
pub enum Command {
    /// Run the API server (and, as they land, the delivery workers).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage channels.
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// VAPID keys.
    #[command(subcommand)]
    Vapid(VapidCmd),
    /// The master key that encrypts secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Send a notification to a user (queued durably; a running `herald serve` delivers it).
    Send(SendArgs),
    /// Print the commented default configuration.
    Config,
    /// Print the OpenAPI document.
    Openapi,
}

/// `herald account …`
#[derive(Subcommand)]
pub enum AccountCmd {
    /// Create an account and print its id and first secret and public keys.
    Create {
        #[arg(long)]
        name: String,
        /// Accept plain user ids from clients (insecure; for development).
        #[arg(long)]
        dev_mode: bool,
        #[arg(long)]
        json: bool,
    },
}

/// `herald channel …`
#[derive(Subcommand)]
pub enum ChannelCmd {
    /// Create a channel and print its id (and VAPID public key for web_push).
    Create(ChannelCreate),
}

/// Arguments of `herald channel create`.
#[derive(Args)]
pub struct ChannelCreate {
    #[arg(long)]
    pub account: i64,
    /// web_push, apns or fcm.
    #[arg(long = "type")]
    pub channel_type: String,
    #[arg(long)]
    pub name: String,
    /// VAPID subject for web_push (mailto: or https:).
    #[arg(long, default_value = "mailto:admin@localhost")]
    pub subject: String,
    /// Full channel config as JSON (apns, fcm; overrides --subject).
    #[arg(long)]
    pub config_json: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `herald send`.
#[derive(Args)]
pub struct SendArgs {
    #[arg(long)]
    pub account: i64,
    /// The user's external id.
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub body: Option<String>,
    /// Where a click leads.
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds the push services may hold it (default 4 weeks).
    #[arg(long)]
    pub ttl: Option<u32>,
}

/// `herald vapid …`
#[derive(Subcommand)]
pub enum VapidCmd {
    /// Generate a VAPID key pair.
    Generate,
}

/// `herald secrets …`
#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Print a new master key (for `secret_key` / HERALD_SECRET_KEY).
    Generate,
    /// Re-encrypt every stored secret under `secret_key`, from `secret_key_previous`.
    Rotate,
}

/// Runs the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("herald: {message}");
            1
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Config => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Command::Openapi => {
            print!("{}", crate::http::openapi::document());
            Ok(())
        }
        Command::Vapid(VapidCmd::Generate) => {
            let pair = herald_core::keys::generate_vapid();
            println!("public_key={}\nprivate_key_pkcs8={}", pair.public_key_b64url, pair.private_pkcs8_b64);
            Ok(())
        }
        Command::Secrets(SecretsCmd::Generate) => {
            println!("{}", herald_core::secrets::generate_key());
            Ok(())
        }
        command => {
            let config = Config::load(cli.config.as_deref())?;
            crate::init_tracing(&config);
            match command {
                Command::Serve => {
                    let lock = crate::app::ServeLock::acquire(&config.database_url)?;
                    let app = App::build(&config).await?;
                    if lock.is_some() {
                        app.release_all_leases().await?;
                    }
                    let served = app.run_until_stopped().await.map_err(|e| format!("server failed: {e}"));
                    drop(lock);
                    served
                }
                Command::Migrate => {
                    let keyring = crate::secrets::keyring(&config)?;
                    herald_store::migrate_only(&config.database_url, keyring).await.map_err(|e| chain(&e))?;
                    println!("migrations applied");
                    Ok(())
                }
                Command::Account(cmd) => account(&config, cmd).await,
                Command::Channel(ChannelCmd::Create(args)) => channel(&config, args).await,
                Command::Send(args) => send(&config, args).await,
                Command::Secrets(SecretsCmd::Rotate) => rotate(&config).await,
                Command::Config | Command::Openapi | Command::Vapid(_) | Command::Secrets(SecretsCmd::Generate) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

async fn service(config: &Config) -> Result<Service, String> {
    Ok(crate::app::service(config, 2).await?.0)
}

fn describe(e: herald_core::ServiceError) -> String {
    match e {
        herald_core::ServiceError::Validation(fields) => {
            fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        other => chain(&other),
    }
}

async fn account(config: &Config, cmd: AccountCmd) -> Result<(), String> {
    let AccountCmd::Create { name, dev_mode, json } = cmd;
    let created = service(config).await?.create_account(&name, dev_mode).await.map_err(describe)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&created).map_err(|e| e.to_string())?);
    } else {
        println!(
            "account_id={}\nsecret_key={}\npublic_key={}",
            created.account.id, created.secret_key, created.public_key
        );
    }
    Ok(())
}

async fn channel(config: &Config, args: ChannelCreate) -> Result<(), String> {
    let channel_type = ChannelType::parse(&args.channel_type)
        .ok_or_else(|| format!("--type must be one of {}", ChannelType::expected()))?;
    let cfg: Value = match &args.config_json {
        Some(raw) => serde_json::from_str(raw).map_err(|e| format!("--config-json is not JSON: {e}"))?,
        None => json!({"subject": args.subject}),
    };
    let svc = service(config).await?;
    svc.get_account(args.account).await.map_err(describe)?;
    let input =
        ChannelInput { name: Some(args.name), channel_type: Some(channel_type), config: Some(cfg), is_default: None };
    let channel = svc.create_channel(args.account, input).await.map_err(describe)?;
    let view = ChannelView::from(&channel);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?);
    } else {
        println!("channel_id={}", view.id);
        if let Some(k) = view.vapid_public_key {
            println!("vapid_public_key={k}");
        }
    }
    Ok(())
}

async fn send(config: &Config, args: SendArgs) -> Result<(), String> {
    use herald_core::delivery::{Content, Options};
    use herald_core::service::{MAX_TTL, SendRequest, SendTarget};
    let svc = service(config).await?;
    svc.get_account(args.account).await.map_err(describe)?;
    let content = Content { title: args.title, body: args.body, url: args.url, ..Default::default() };
    let options = Options { ttl: args.ttl.unwrap_or(MAX_TTL), ..Default::default() };
    let fingerprint = json!({"cli": [&args.user, &content.title, &content.body]}).to_string();
    let req = SendRequest {
        to: SendTarget::User(args.user),
        content,
        options,
        send_at: None,
        channels: None,
        idempotency_key: None,
        request_fingerprint: fingerprint,
    };
    let accepted = svc.send_notification(args.account, req).await.map_err(describe)?;
    println!("{}", serde_json::to_string_pretty(&accepted).map_err(|e| e.to_string())?);
    Ok(())
}

/// Opening the store already checks that every secret opens under the configured keys (and
/// seals plaintext); rotation then moves what is under the previous key to the current one.
async fn rotate(config: &Config) -> Result<(), String> {
    let svc = service(config).await?;
    let report = svc.rotate_secrets().await.map_err(describe)?;
    let key = crate::secrets::keyring(config)?.current_id().to_string();
    println!("channels re-encrypted: {}\nwebhooks re-encrypted: {}", report.channels, report.webhooks);
    println!("every stored secret is now under master key {key}");
    if !config.secret_key_previous.trim().is_empty() {
        println!("secret_key_previous is no longer needed: remove it and restart");
    }
    Ok(())
}
