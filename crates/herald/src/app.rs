//! Process lifecycle: open storage, bind, serve until SIGTERM/Ctrl-C, then drain.

use std::sync::Arc;

use herald_core::Service;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{AppState, router};
use crate::outbound::Outbound;

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl App {
    /// Opens the database (applying migrations) and binds the listener.
    pub async fn build(config: &Config) -> Result<App, String> {
        let store = herald_store::open(&config.database_url, config.database_max_connections)
            .await
            .map_err(|e| format!("cannot open database: {}", chain(&e)))?;
        let networks = herald_providers::ssrf::parse_networks(&config.outbound_allow).map_err(|e| e.to_string())?;
        let svc = Service::new(store, Arc::new(Outbound::new(networks)));
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        // With port 0 the public URL must name the port actually bound.
        let public_url = if config.public_url.is_empty() {
            format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?)
        } else {
            config.public_url()
        };
        let admin_token = (!config.admin_token.is_empty()).then(|| Arc::from(config.admin_token.as_str()));
        let state = AppState { svc, admin_token, public_url: Arc::from(public_url) };
        let router = router(state.clone(), config.max_body_bytes);
        Ok(App { listener, router, state })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (the service layer), for the CLI and tests.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "herald listening");
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown).await
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
