//! Herald's storage: the [`Store`] trait of `herald-core` implemented once, by a macro, for
//! SQLite and for PostgreSQL. Both share the same SQL (SQLite accepts `$n` placeholders) and
//! the same schema; only migrations and a few engine-specific statements differ. Secrets are
//! sealed here on the way in and opened on the way out (`secrets.rs`, herald-core `secrets`):
//! callers see plaintext, the database holds none.
#![forbid(unsafe_code)]

#[macro_use]
mod sql;
mod announce;
mod canonical;
mod cluster;
mod compat;
mod imp;
mod lease;
mod metrics;
mod migrate;
mod outbox;
mod outbox_rows;
mod pairing;
mod receipts;
mod rows;
mod secrets;
mod webhooks;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use herald_core::StoreError;
use herald_core::secrets::{Keyring, Reseal};
use herald_core::store::Store;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// The embedded-SQLite backend. All writes go through a one-connection pool: SQLite has one
/// writer anyway, and serialising in the pool avoids `SQLITE_BUSY` on lock upgrades.
#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    secrets: Arc<Keyring>,
}

/// The PostgreSQL backend, for several nodes sharing one database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    secrets: Arc<Keyring>,
}

/// Which engine a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` select PostgreSQL; `sqlite:` URLs and plain paths SQLite.
    pub fn of(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(d.message().to_string()),
        e if unavailable(&e) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Database(Box::new(other)),
    }
}

/// Whether an error means the database is out of reach rather than that the request failed:
/// connection errors, an exhausted or closed pool, and PostgreSQL's connection-exception (08…)
/// and operator-intervention (57P01–57P03: shutting down, restarting) codes.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// The file a SQLite database URL (or plain path) names; `None` for PostgreSQL.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    (Backend::of(url) == Backend::Sqlite).then(|| sqlite_path(url).into())
}

/// The file a SQLite database URL (`sqlite://path`, `sqlite:path` or a plain path) names.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url)
}

impl SqliteStore {
    /// Opens (creating file and folder when missing) a SQLite database.
    pub async fn open(url: &str, secrets: Arc<Keyring>) -> Result<Self, StoreError> {
        let path = sqlite_path(url);
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(Box::new(e)))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Freed space inside pages is zeroed (at no extra I/O), so a secret replaced by its
            // sealed form, or by a new key, leaves no plaintext behind in the file.
            .pragma("secure_delete", "FAST");
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await.map_err(db_err)?;
        let read =
            SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(true)).await.map_err(db_err)?;
        spawn_checkpointer(write.clone(), format!("{path}-wal"));
        Ok(Self { write, read, secrets })
    }

    /// After secrets were rewritten: moves the new pages into the database file and empties the
    /// write-ahead log, so the old page images (plaintext, or under a retired key) are gone.
    async fn flush_old_pages(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.write).await {
            tracing::warn!(error = %e, "SQLite WAL checkpoint after sealing secrets failed");
        }
    }

    async fn listen_for_work(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        None
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }
}

/// WAL size past which the checkpointer truncates it.
const WAL_LIMIT_BYTES: u64 = 32 * 1024 * 1024;

/// Keeps the SQLite write-ahead log small. SQLite's own automatic checkpoints are passive: under
/// a steady stream of readers they never get to reset the log, which then grows without bound
/// (hundreds of MB under load) and each attempt does more I/O while holding the only writer.
/// A `TRUNCATE` checkpoint waits briefly for readers (bounded by the busy timeout) and resets it.
fn spawn_checkpointer(write: SqlitePool, wal_path: String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if write.is_closed() {
                return;
            }
            let size = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
            if size < WAL_LIMIT_BYTES {
                continue;
            }
            match sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&write).await {
                Ok(_) => tracing::debug!(wal_bytes = size, "checkpointed and truncated the SQLite WAL"),
                Err(e) => tracing::warn!(error = %e, "SQLite WAL checkpoint failed"),
            }
        }
    });
}

impl PgStore {
    /// Connects to PostgreSQL.
    pub async fn open(url: &str, max_connections: u32, secrets: Arc<Keyring>) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // A request waits this long for a connection; then it is a 503 with Retry-After (the
            // database is out of reach or the pool exhausted), not a hung client.
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(db_err)?;
        Ok(Self { pool, secrets })
    }

    /// Old row versions are PostgreSQL's to vacuum; nothing to do here.
    async fn flush_old_pages(&self) {}

    /// Listens on `herald_work` with a dedicated connection, forwarding each notification.
    /// The listener reconnects by itself; a lost notification only costs one poll interval.
    async fn listen_for_work(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN unavailable; other nodes' work is found by polling");
                return None;
            }
        };
        if let Err(e) = listener.listen("herald_work").await {
            tracing::warn!(error = %e, "LISTEN herald_work failed; polling instead");
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => {
                        // A full channel already holds a wake-up: coalesce.
                        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(()) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Some(rx)
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }
}

/// Opens the database a URL names, applies pending migrations and seals any secret still
/// stored in clear; fails when a stored secret opens under neither of `secrets`' keys.
pub async fn open(url: &str, max_connections: u32, secrets: Keyring) -> Result<Arc<dyn Store>, StoreError> {
    let secrets = Arc::new(secrets);
    Ok(match Backend::of(url) {
        Backend::Postgres => {
            let store = PgStore::open(url, max_connections, secrets).await?;
            migrate::postgres(&store.pool).await?;
            store.canonicalize_devices().await?;
            store.reseal_secrets(Reseal::Plaintext).await?;
            Arc::new(store)
        }
        Backend::Sqlite => {
            let store = SqliteStore::open(url, secrets).await?;
            migrate::sqlite(&store.write).await?;
            store.canonicalize_devices().await?;
            store.reseal_secrets(Reseal::Plaintext).await?;
            Arc::new(store)
        }
    })
}

/// Applies pending migrations (and seals plaintext secrets) without keeping a store open
/// (`herald migrate`).
pub async fn migrate_only(url: &str, secrets: Keyring) -> Result<(), StoreError> {
    open(url, 2, secrets).await.map(drop)
}
