//! Test harness: starts the real server on 127.0.0.1:0 against a fresh database (a temporary
//! SQLite file, or a PostgreSQL database created for the test and dropped after), and talks
//! HTTP to it.

use std::path::PathBuf;
use std::sync::Arc;

use herald::{App, Config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const P256DH: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
pub const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares each listed `async fn name(backend)` as two tests: `sqlite::name` and
/// `postgres::name`. The test script skips `postgres::` tests when PostgreSQL is unreachable
/// (and says so); CI always runs both.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Postgres).await })*
        }
    };
}

/// The PostgreSQL server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("HERALD_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

enum Db {
    Sqlite { dir: PathBuf },
    Postgres { name: String },
}

/// A direct connection to the test's database, for asserting what is stored.
#[derive(Clone)]
pub enum DbConn {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A running server with its own database.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: DbConn,
    /// The database the server uses (a path for SQLite).
    pub database_url: String,
    /// The server's configuration, for restarts and for child processes on the same database.
    pub config: Config,
    db_kind: Arc<Db>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TestApp {
    /// Starts a server with default test settings.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `tweak` adjusts its config.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        // Server logs go to the test's output, shown when a test fails.
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let (db_kind, database_url) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("herald-test-{}", unique()));
                let url = dir.join("herald.db").display().to_string();
                (Db::Sqlite { dir }, url)
            }
            Backend::Postgres => {
                let name = format!("herald_t_{}", unique());
                let admin =
                    PgPool::connect(&pg_admin_url()).await.expect("PostgreSQL reachable (set HERALD_TEST_PG_URL)");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
                admin.close().await;
                let base = pg_admin_url();
                let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
                (Db::Postgres { name }, url)
            }
        };
        let mut config = Config::defaults();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.database_url = database_url.clone();
        config.database_max_connections = 8;
        config.admin_token = ADMIN_TOKEN.into();
        config.outbound_allow = "127.0.0.1/32".into();
        // Fast retries and a short provider timeout keep outcome tests quick; the lease must
        // still exceed the timeout.
        config.delivery_retry_base_ms = 50;
        config.delivery_poll_ms = 100;
        config.provider_timeout_ms = 1000;
        config.delivery_lease_seconds = 3;
        config.webhook_retry_base_ms = 50;
        // Many tests present bad credentials on purpose, all from 127.0.0.1; the tests of the
        // failed-authentication budget set their own.
        config.auth_failures_per_minute = 1_000_000;
        // PostgreSQL requires a master key; SQLite tests run without one, so every one of them
        // also goes through the key file created beside the database.
        if backend == Backend::Postgres {
            config.secret_key = herald_core::secrets::generate_key();
        }
        tweak(&mut config);
        let (base, tx, server) = serve(&config).await;
        let db = match backend {
            Backend::Sqlite => DbConn::Sqlite(SqlitePool::connect(&format!("sqlite://{database_url}")).await.unwrap()),
            Backend::Postgres => DbConn::Postgres(PgPool::connect(&database_url).await.unwrap()),
        };
        TestApp {
            base,
            http: reqwest::Client::new(),
            db,
            database_url,
            config,
            db_kind: Arc::new(db_kind),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server and starts a new one on the same database, after `tweak` adjusts the
    /// configuration (e.g. other master keys); the new one may answer on another port.
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut Config)) {
        self.stop().await;
        tweak(&mut self.config);
        let (base, tx, server) = serve(&self.config).await;
        (self.base, self.shutdown, self.server) = (base, Some(tx), Some(server));
    }

    /// Stops the server (gracefully), keeping the database.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// The master-key settings as environment variables, for a `herald` child process.
    pub fn secret_env(&self) -> Vec<(&'static str, String)> {
        [
            ("HERALD_SECRET_KEY", &self.config.secret_key),
            ("HERALD_SECRET_KEY_PREVIOUS", &self.config.secret_key_previous),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect()
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    /// Sends raw bytes as the body.
    pub async fn call_raw(&self, method: Method, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.body(body.to_string()).send().await.unwrap()).await
    }

    /// Sends a request with extra headers.
    pub async fn call_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates an account through the operator API; returns (id, secret key, public key).
    pub async fn account(&self, dev_mode: bool) -> (i64, String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/admin/v1/accounts",
                Some(ADMIN_TOKEN),
                Some(json!({"name": "acme", "dev_mode": dev_mode})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_i64().unwrap(),
            body["secret_key"].as_str().unwrap().into(),
            body["public_key"].as_str().unwrap().into(),
        )
    }

    /// Creates a Web Push channel; returns its id.
    pub async fn web_push_channel(&self, sk: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/channels",
                sk,
                json!({"name": "web", "type": "web_push", "config": {"subject": "mailto:ops@example.com"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Row counts and latest update stamps of every table: equal snapshots mean nothing changed.
    pub async fn snapshot(&self) -> Vec<(String, i64, i64)> {
        let tables = [
            ("accounts", "updated_at"),
            ("api_keys", "COALESCE(revoked_at, created_at)"),
            ("signing_keys", "created_at"),
            ("users", "updated_at"),
            ("sessions", "created_at"),
            ("channels", "updated_at"),
            ("subscriptions", "updated_at"),
            ("subscription_topics", "subscription_id"),
        ];
        let mut out = Vec::new();
        for (table, stamp) in tables {
            let sql = format!("SELECT COUNT(*), CAST(COALESCE(SUM({stamp}), 0) AS BIGINT) FROM {table}");
            let row: (i64, i64) = match &self.db {
                DbConn::Sqlite(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap(),
                DbConn::Postgres(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap(),
            };
            out.push((table.to_string(), row.0, row.1));
        }
        out
    }

    /// Opens the database again as a second server would (migrations and the start-up
    /// canonicalisation run), without serving, then closes it.
    pub async fn reopen(&self) {
        let mut config = self.config.clone();
        config.database_max_connections = 2;
        config.workers = false;
        drop(App::build(&config).await.expect("the database opens again"));
    }

    /// Runs a statement on the test database.
    pub async fn execute(&self, sql: &str) {
        match &self.db {
            DbConn::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map(drop),
            DbConn::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map(drop),
        }
        .unwrap()
    }

    /// Runs a scalar query on the test database.
    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        match &self.db {
            DbConn::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(p).await.unwrap(),
            DbConn::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(p).await.unwrap(),
        }
    }
}

/// Builds and runs a server; returns its base URL, the sender that stops it and its task.
async fn serve(config: &Config) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let app = App::build(config).await.expect("server builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (base, tx, server)
}

async fn read(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let db = self.db_kind.clone();
        let conn = self.db.clone();
        // Cleanup needs async I/O and Drop is sync: do it on a helper thread with its own runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                match conn {
                    DbConn::Sqlite(p) => p.close().await,
                    DbConn::Postgres(p) => p.close().await,
                }
                match &*db {
                    Db::Sqlite { dir } => {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    Db::Postgres { name } => {
                        if let Ok(admin) = PgPool::connect(&pg_admin_url()).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&admin)
                            .await;
                        }
                    }
                }
            });
        })
        .join()
        .ok();
    }
}

/// Asserts the `/v1` error body: status, code, and that it carries a request id.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "status; body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "code; body: {}", got.1);
    assert_eq!(got.1["error"]["status"], status);
    assert!(
        got.1["error"]["request_id"].as_str().is_some_and(|r| r.starts_with("req_")),
        "request id; body: {}",
        got.1
    );
}

/// Asserts a 422 naming `field` with `reason`.
#[track_caller]
pub fn assert_field(got: &(StatusCode, Value), field: &str, reason: &str) {
    assert_error(got, 422, "validation_failed");
    let fields = got.1["error"]["details"]["fields"].as_array().expect("details.fields");
    assert!(
        fields.iter().any(|f| f["field"] == field && f["reason"] == reason),
        "expected {field}/{reason} in {}",
        got.1
    );
}

/// Reads a test fixture.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures").join(name)).unwrap()
}

/// A browser-like Web Push subscription body for `endpoint`.
pub fn web_push_settings(endpoint: &str) -> Value {
    json!({"endpoint": endpoint, "p256dh": P256DH, "auth": AUTH})
}

impl TestApp {
    /// Polls a notification until nothing is queued or in flight and any fan-out is done.
    pub async fn wait_done(&self, sk: &str, id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, n) = self.get(&format!("/v1/notifications/{id}?limit=200"), sk).await;
            assert_eq!(status, 200, "{n}");
            let busy = n["counts"]["queued"].as_i64().unwrap() + n["counts"]["sending"].as_i64().unwrap();
            let fanning = n["fanout"]["status"] == "pending";
            if busy == 0 && !fanning {
                return n;
            }
            assert!(std::time::Instant::now() < deadline, "notification {id} did not settle: {n}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Sends a notification and returns the 202 body.
    pub async fn send(&self, sk: &str, body: Value) -> Value {
        let (status, res) = self.post("/v1/notifications", sk, body).await;
        assert_eq!(status, 202, "{res}");
        res
    }
}
