//! Migrations are embedded in the binary and applied on start. There are two folders, one per
//! engine, kept in step: the same tables, columns and indexes.

use herald_core::StoreError;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{PgPool, SqlitePool};

fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(version, name.into(), MigrationType::Simple, sql.into_sql_str(), false)
}

fn err(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// Applies the SQLite migrations.
pub async fn sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    let migrations = vec![
        migration(1, "registry", include_str!("../migrations/sqlite/0001_registry.sql")),
        migration(2, "delivery", include_str!("../migrations/sqlite/0002_delivery.sql")),
        migration(3, "webhooks", include_str!("../migrations/sqlite/0003_webhooks.sql")),
        migration(4, "pairing", include_str!("../migrations/sqlite/0004_pairing.sql")),
        migration(5, "compat", include_str!("../migrations/sqlite/0005_compat.sql")),
        migration(6, "indexes", include_str!("../migrations/sqlite/0006_indexes.sql")),
        migration(7, "hardening", include_str!("../migrations/sqlite/0007_hardening.sql")),
        migration(8, "browser", include_str!("../migrations/sqlite/0008_browser.sql")),
        migration(9, "nodes", include_str!("../migrations/sqlite/0009_nodes.sql")),
    ];
    Migrator::with_migrations(migrations).run(pool).await.map_err(err)
}

/// Applies the PostgreSQL migrations.
pub async fn postgres(pool: &PgPool) -> Result<(), StoreError> {
    let migrations = vec![
        migration(1, "registry", include_str!("../migrations/postgres/0001_registry.sql")),
        migration(2, "delivery", include_str!("../migrations/postgres/0002_delivery.sql")),
        migration(3, "webhooks", include_str!("../migrations/postgres/0003_webhooks.sql")),
        migration(4, "pairing", include_str!("../migrations/postgres/0004_pairing.sql")),
        migration(5, "compat", include_str!("../migrations/postgres/0005_compat.sql")),
        migration(6, "indexes", include_str!("../migrations/postgres/0006_indexes.sql")),
        migration(7, "hardening", include_str!("../migrations/postgres/0007_hardening.sql")),
        migration(8, "browser", include_str!("../migrations/postgres/0008_browser.sql")),
        migration(9, "nodes", include_str!("../migrations/postgres/0009_nodes.sql")),
    ];
    Migrator::with_migrations(migrations).run(pool).await.map_err(err)
}
