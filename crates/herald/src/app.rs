//! Process lifecycle: open storage, build the providers and the delivery engine, bind, serve
//! until SIGTERM/Ctrl-C, then drain: stop accepting, finish in-flight deliveries, release leases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::Service;
use herald_core::cluster::{self, ClusterConfig, Node};
use herald_core::delivery::Provider;
use herald_core::delivery::engine::{Engine, Providers};
use herald_core::delivery::hooks::HookConfig;
use herald_core::model::ChannelType;
use herald_core::webhooks::HookSender;
use herald_providers::http::{HttpClients, ProviderSettings};
use herald_providers::ssrf::OutboundPolicy;
use herald_providers::webhook::WebhookSender;
use herald_providers::webpush::provider::WebPushProvider;
use herald_providers::{ApnsProvider, FcmProvider};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::http::{AppState, router};
use crate::outbound::Outbound;

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    engine: Option<Arc<Engine>>,
    hooks: Option<Arc<dyn HookSender>>,
    hook_config: HookConfig,
    grace: Duration,
    /// This process in the cluster; heartbeats run on PostgreSQL only (`cluster`).
    node: Arc<Node>,
    cluster: Option<ClusterConfig>,
    wake: Arc<Notify>,
    /// `metrics_listen`: `/metrics` without credentials, for a private network.
    metrics: Option<TcpListener>,
}

/// Builds the providers every channel type is delivered with.
pub fn providers(config: &Config, policy: Arc<OutboundPolicy>) -> Result<Providers, String> {
    let settings =
        ProviderSettings { request_timeout: Duration::from_millis(config.provider_timeout_ms), ..Default::default() };
    let web_push = WebPushProvider::new(policy.clone(), &settings)
        .map_err(|e| format!("cannot build the Web Push client: {e}"))?;
    // APNs and FCM share one pair of pooled HTTP/2 clients, behind the same SSRF guard: their
    // base URLs (channel `endpoint`, FCM `token_uri`) are account-supplied.
    let clients = HttpClients::guarded(&settings, policy).map_err(|e| format!("cannot build the HTTP clients: {e}"))?;
    let mut map: HashMap<ChannelType, Arc<dyn Provider>> = HashMap::new();
    map.insert(ChannelType::WebPush, Arc::new(web_push));
    map.insert(ChannelType::Apns, Arc::new(ApnsProvider::with_clients(clients.clone())));
    map.insert(ChannelType::Fcm, Arc::new(FcmProvider::with_clients(clients)));
    Ok(map)
}

/// The webhook sender, behind the SSRF guard (webhook URLs are account-supplied).
fn webhook_sender(config: &Config) -> Result<Arc<dyn HookSender>, String> {
    let networks = herald_providers::ssrf::parse_networks(&config.outbound_allow).map_err(|e| e.to_string())?;
    let policy = Arc::new(OutboundPolicy::default_push_hosts().with_allowed_networks(networks));
    let settings =
        ProviderSettings { request_timeout: Duration::from_millis(config.provider_timeout_ms), ..Default::default() };
    let clients =
        HttpClients::guarded(&settings, policy).map_err(|e| format!("cannot build the webhook client: {e}"))?;
    Ok(Arc::new(WebhookSender::new(clients)))
}

/// Opens storage and builds the service layer with its delivery seam.
pub async fn service(config: &Config, max_connections: u32) -> Result<(Service, Arc<Providers>, Arc<Notify>), String> {
    let keyring = crate::secrets::keyring(config)?;
    let store = herald_store::open(&config.database_url, max_connections, keyring)
        .await
        .map_err(|e| format!("cannot open database: {}", chain(&e)))?;
    let networks = herald_providers::ssrf::parse_networks(&config.outbound_allow).map_err(|e| e.to_string())?;
    let outbound = Outbound::new(networks);
    let providers = Arc::new(providers(config, Arc::new(outbound.0.clone()))?);
    let wake = Arc::new(Notify::new());
    let svc = Service::new(store, Arc::new(outbound)).with_delivery(providers.clone(), wake.clone());
    Ok((svc, providers, wake))
}

/// How often the gauges of stored state (queue depth, subscriptions, …) are read again.
const METRICS_REFRESH: Duration = Duration::from_secs(10);

/// Keeps the gauges of stored state fresh, so a scrape never queries the database.
async fn refresh_metrics(store: Arc<dyn herald_core::store::Store>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match store.stored_state(herald_core::clock::now_ms()).await {
            Ok(state) => herald_core::metrics::refresh_gauges(herald_core::metrics::global(), &state),
            Err(e) => tracing::debug!(error = %e, "reading the metrics gauges failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(METRICS_REFRESH) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The lock `herald serve` holds beside a SQLite database while it serves: one serving process
/// per database file, so that at start it may release every lease at once. CLI commands do not
/// take it and keep working alongside. Released by the operating system when the process ends,
/// however it ends.
pub struct ServeLock {
    _file: std::fs::File,
}

impl ServeLock {
    /// Takes the lock for a SQLite `database_url`; `None` for PostgreSQL, where nodes coordinate
    /// through the node table instead.
    pub fn acquire(database_url: &str) -> Result<Option<ServeLock>, String> {
        if herald_store::Backend::of(database_url) == herald_store::Backend::Postgres {
            return Ok(None);
        }
        let db = herald_store::sqlite_path(database_url);
        let lock_path = format!("{db}.serve-lock");
        if let Some(dir) = std::path::Path::new(db).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open the lock file {lock_path}: {e}"))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ServeLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another `herald serve` is already serving the database {db} (it holds {lock_path}); \
                 stop it first, or give this one its own database_url"
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {lock_path}: {e}")),
        }
    }
}

impl App {
    /// With the serve lock held: every lease in the database belonged to a process that is gone,
    /// so its deliveries and webhooks are due again now rather than when their leases expire.
    pub async fn release_all_leases(&self) -> Result<u64, String> {
        let released = self.state.svc.store().release_leases_of("").await.map_err(|e| chain(&e))?;
        if released > 0 {
            tracing::info!(released, "released the leases of the previous process");
            self.wake.notify_one();
            self.state.svc.hooks_waker().notify_one();
        }
        Ok(released)
    }

    /// Opens the database (applying migrations), builds the engine and binds the listener.
    pub async fn build(config: &Config) -> Result<App, String> {
        let (svc, providers, wake) = service(config, config.database_max_connections).await?;
        let node = Node::new();
        let engine = config.workers.then(|| {
            Engine::new(svc.store().clone(), providers, config.engine(), wake.clone(), svc.hooks_waker(), node.clone())
        });
        // Several nodes share a PostgreSQL database and must notice each other's death; a SQLite
        // database has one serving process (`herald serve` holds its lock file).
        let cluster = config.database_url.starts_with("postgres").then(|| ClusterConfig {
            node_timeout: Duration::from_secs(config.node_timeout_seconds),
            ..ClusterConfig::default()
        });
        let hooks = match config.workers {
            true => Some(webhook_sender(config)?),
            false => None,
        };
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let metrics = match config.metrics_listen.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?),
            Err(_) => None,
        };
        // With port 0 the public URL must name the port actually bound.
        let public_url = if config.public_url.is_empty() {
            format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?)
        } else {
            config.public_url()
        };
        let admin_token = (!config.admin_token.is_empty()).then(|| Arc::from(config.admin_token.as_str()));
        let state = AppState {
            svc,
            admin_token,
            public_url: Arc::from(public_url),
            limits: Arc::default(),
            default_rate_per_minute: config.rate_limit_per_minute,
            node: node.clone(),
        };
        let edge = crate::http::edge::Edge::new(config.max_body_bytes, config.auth_failures_per_minute);
        let router = router(state.clone(), edge);
        let hook_config =
            HookConfig { retry_base: Duration::from_millis(config.webhook_retry_base_ms), ..Default::default() };
        Ok(App {
            listener,
            router,
            state,
            engine,
            hooks,
            hook_config,
            grace: Duration::from_secs(config.shutdown_grace_seconds),
            node,
            cluster,
            wake,
            metrics,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (the service layer), for the CLI and tests.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests and deliveries finish.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, workers = self.engine.is_some(), "herald listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(listener) = self.metrics {
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            let mut stop = stop_rx.clone();
            let router = crate::http::metrics::open_router();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { while stop.changed().await.is_ok() && !*stop.borrow() {} })
                    .await;
            });
        }
        tokio::spawn(refresh_metrics(self.state.svc.store().clone(), stop_rx.clone()));
        let hooks = self.hooks.map(|sender| {
            let svc = &self.state.svc;
            tokio::spawn(herald_core::delivery::hooks::run(
                svc.store().clone(),
                sender,
                self.hook_config,
                svc.hooks_waker(),
                self.node.clone(),
                stop_rx.clone(),
            ))
        });
        let cluster = self.cluster.map(|c| {
            let wake = vec![self.wake.clone(), self.state.svc.hooks_waker()];
            tokio::spawn(cluster::run(self.state.svc.store().clone(), self.node.clone(), c, wake, stop_rx.clone()))
        });
        let engine = self.engine.map(|e| tokio::spawn(e.run(stop_rx, self.grace)));
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        // The peer address feeds the failed-authentication budgets (http/auth_guard.rs).
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(self.listener, service).with_graceful_shutdown(signal).await;
        if let Some(engine) = engine {
            let _ = engine.await;
        }
        if let Some(hooks) = hooks {
            let _ = hooks.await;
        }
        if let Some(cluster) = cluster {
            let _ = cluster.await;
        }
        served
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; finishing in-flight work");
}

/// An error with its source chain, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
