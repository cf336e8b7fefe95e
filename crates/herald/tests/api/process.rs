//! Tests that need the real `herald` binary as a separate process: killed with SIGKILL
//! mid-delivery and mid-fan-out, and two nodes sharing one PostgreSQL database.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_providers::webpush::testing::UaKeyPair;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock_push::{MockPush, Reply};

/// A `herald serve` child process on its own port.
pub struct Node {
    child: Child,
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Node {
    /// Starts a node on `db`'s database, with its master keys.
    pub async fn start(db: &TestApp) -> Node {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: &TestApp, extra_env: &[(&str, &str)]) -> Node {
        let database_url = node_url(db);
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("herald-node-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .current_dir(&dir)
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_DATABASE_URL", database_url)
            .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HERALD_OUTBOUND_ALLOW", "127.0.0.1/32")
            .env("HERALD_DELIVERY_LEASE_SECONDS", "2")
            .env("HERALD_PROVIDER_TIMEOUT_MS", "1500")
            .env("HERALD_DELIVERY_RETRY_BASE_MS", "50")
            .env("HERALD_DELIVERY_POLL_MS", "100")
            .env("HERALD_DATABASE_MAX_CONNECTIONS", "8")
            .env("RUST_LOG", "warn")
            .envs(db.secret_env())
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("herald binary starts");
        let node = Node { child, base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/readyz", node.base)).await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "node did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    /// SIGTERM, then waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap().code()
    }

    /// SIGKILL: no graceful shutdown, leases stay taken until they expire.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// An account with a Web Push channel: (secret key, channel id).
    pub async fn account_with_channel(&self) -> (String, String) {
        let (_, account) =
            self.call(Method::POST, "/admin/v1/accounts", ADMIN_TOKEN, Some(json!({"name": "acme"}))).await;
        let sk = account["secret_key"].as_str().unwrap().to_string();
        let (_, channel) = self
            .call(
                Method::POST,
                "/v1/channels",
                &sk,
                Some(json!({"name": "web", "type": "web_push", "config": {"subject": "mailto:ops@example.com"}})),
            )
            .await;
        (sk, channel["id"].as_str().unwrap().to_string())
    }

    /// Waits until a notification has nothing queued or in flight and no pending fan-out.
    pub async fn wait_done(&self, sk: &str, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, n) = self.call(Method::GET, &format!("/v1/notifications/{id}?limit=1"), sk, None).await;
            let busy = n["counts"]["queued"].as_i64().unwrap_or(1) + n["counts"]["sending"].as_i64().unwrap_or(1);
            if busy == 0 && n["fanout"]["status"] != "pending" {
                return n;
            }
            assert!(Instant::now() < deadline, "notification {id} did not settle: {n}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers `n` browsers, one per user, on the mock; returns their keys by endpoint path.
pub(crate) async fn browsers(node: &Node, sk: &str, mock: &MockPush, n: usize) -> HashMap<String, UaKeyPair> {
    let mut keys = HashMap::new();
    for i in 0..n {
        let ua = UaKeyPair::generate();
        let settings =
            json!({"endpoint": mock.endpoint(&format!("b{i}")), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
        let (status, _) = node
            .call(Method::POST, &format!("/v1/users/u{i}/subscriptions"), sk, Some(json!({"settings": settings})))
            .await;
        assert_eq!(status, 201);
        keys.insert(format!("/push/b{i}"), ua);
    }
    keys
}

/// What the mock received, as (endpoint path, decrypted title) with the number of times.
fn tally(mock: &MockPush, keys: &HashMap<String, UaKeyPair>, upto: Option<usize>) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    for r in mock.received().into_iter().take(upto.unwrap_or(usize::MAX)) {
        let payload: Value = serde_json::from_slice(&keys[&r.path].decrypt(&r.body).expect("decrypts")).unwrap();
        *seen.entry((r.path, payload["title"].as_str().unwrap().to_string())).or_insert(0) += 1;
    }
    seen
}

pub(crate) async fn database_for(b: Backend) -> TestApp {
    // TestApp owns the database's lifetime (and cleanup); its in-process server has its workers
    // switched off so only the child processes deliver.
    TestApp::spawn_with(b, |c| c.workers = false).await
}

/// The database URL a child process is given.
pub(crate) fn node_url(db: &TestApp) -> String {
    let url = db.database_url.clone();
    if url.starts_with("postgres") { url } else { format!("sqlite://{url}") }
}

async fn killed_mid_delivery_every_notification_arrives(b: Backend) {
    let db = database_for(b).await;
    let mock = MockPush::start().await;
    let mut node = Node::start(&db).await;
    let (sk, _) = node.account_with_channel().await;
    let keys = browsers(&node, &sk, &mock, 100).await;
    mock.fallback(Reply::status(201).delay(Duration::from_millis(300)));
    let users: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    let mut ids = Vec::new();
    for k in 0..5 {
        let (status, res) = node
            .call(
                Method::POST,
                "/v1/notifications",
                &sk,
                Some(json!({"to": {"users": users}, "title": format!("n{k}")})),
            )
            .await;
        assert_eq!((status, res["deliveries"].as_i64()), (202, Some(100)));
        ids.push(res["id"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.received().len() < 50 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    let before_kill = mock.received().len();
    let node = Node::start(&db).await;
    mock.fallback(Reply::status(201));
    for id in &ids {
        let n = node.wait_done(&sk, id, Duration::from_secs(60)).await;
        assert_eq!(n["counts"]["delivered"], 100, "{n}");
    }
    let all = tally(&mock, &keys, None);
    let early = tally(&mock, &keys, Some(before_kill));
    assert_eq!(all.len(), 500, "every (subscription, notification) arrived");
    for (key, count) in &all {
        if *count > 1 {
            assert!(early.contains_key(key), "{key:?} repeated though it was not in flight at the kill");
        }
    }
}

async fn killed_mid_fanout_ends_with_exactly_every_row(b: Backend) {
    const N: i64 = 100_000;
    let db = database_for(b).await;
    let mut node = Node::start(&db).await;
    let (sk, channel) = node.account_with_channel().await;
    seed_topic(&db, &channel, N).await;
    let (status, res) =
        node.call(Method::POST, "/v1/notifications", &sk, Some(json!({"to": {"topic": "all"}, "title": "big"}))).await;
    assert_eq!(status, 202, "{res}");
    let id = res["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = format!("SELECT COUNT(*) FROM deliveries WHERE notification_id = '{id}'");
    while db.scalar_i64(&count).await < 5_000 {
        assert!(Instant::now() < deadline, "fan-out did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    let at_kill = db.scalar_i64(&count).await;
    assert!(at_kill < N, "killed after the fan-out finished ({at_kill}); nothing was tested");
    let node = Node::start(&db).await;
    let n = node.wait_done(&sk, &id, Duration::from_secs(180)).await;
    assert_eq!(n["fanout"], json!({"status": "done", "deliveries": N}));
    assert_eq!(db.scalar_i64(&count).await, N);
    let distinct = format!("SELECT COUNT(DISTINCT subscription_id) FROM deliveries WHERE notification_id = '{id}'");
    assert_eq!(db.scalar_i64(&distinct).await, N);
    assert_eq!(n["counts"]["skipped_muted"], N);
}

/// Inserts `n` muted subscriptions on topic `all` straight into the database (the API would
/// take minutes). Muted, so the fan-out writes every row without pushing 100,000 messages:
/// the row count is what this test is about.
async fn seed_topic(db: &TestApp, channel: &str, n: i64) {
    let account: i64 = db.scalar_i64("SELECT MIN(id) FROM accounts").await;
    let now = 1_700_000_000_000i64;
    for start in (0..n).step_by(5_000) {
        let end = (start + 5_000).min(n);
        let users =
            (start..end).map(|i| format!("({account}, 'u{i}', '{{}}', {now}, {now})")).collect::<Vec<_>>().join(",");
        db.execute(&format!(
            "INSERT INTO users (account_id, external_id, properties, created_at, updated_at) VALUES {users}"
        ))
        .await;
        // One browser each, with its canonical address, as a registration would store it.
        let subs = (start..end)
            .map(|i| {
                let endpoint = format!("https://fcm.googleapis.com/fcm/send/e{i}");
                let settings = json!({"endpoint": endpoint, "p256dh": P256DH, "auth": AUTH}).to_string();
                format!("({account}, (SELECT id FROM users WHERE account_id = {account} AND external_id = 'u{i}'), '{channel}', '{endpoint}', '{endpoint}', '{settings}', 'standard', 'production', 'active', TRUE, {now}, {now}, {now})")
            })
            .collect::<Vec<_>>()
            .join(",");
        db.execute(&format!("INSERT INTO subscriptions (account_id, user_id, channel_id, identifier, address, settings, kind, environment, status, muted, created_at, updated_at, last_seen_at) VALUES {subs}")).await;
    }
    db.execute(&format!("INSERT INTO subscription_topics (subscription_id, account_id, topic) SELECT id, account_id, 'all' FROM subscriptions WHERE account_id = {account}")).await;
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM subscription_topics").await, n);
}

async fn two_nodes_share_the_work_without_duplicates() {
    let db = database_for(Backend::Postgres).await;
    let mock = MockPush::start().await;
    let a = Node::start(&db).await;
    let b = Node::start(&db).await;
    let (sk, _) = a.account_with_channel().await;
    let keys = browsers(&a, &sk, &mock, 100).await;
    let users: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    let mut ids = Vec::new();
    for k in 0..100 {
        let node = if k % 2 == 0 { &a } else { &b };
        let (status, res) = node
            .call(
                Method::POST,
                "/v1/notifications",
                &sk,
                Some(json!({"to": {"users": users}, "title": format!("n{k}")})),
            )
            .await;
        assert_eq!(status, 202);
        ids.push(res["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let n = a.wait_done(&sk, id, Duration::from_secs(120)).await;
        assert_eq!(n["counts"]["delivered"], 100, "{n}");
    }
    let seen = tally(&mock, &keys, None);
    assert_eq!(seen.len(), 10_000, "none lost");
    assert!(seen.values().all(|c| *c == 1), "no delivery sent twice");
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_releases_unfinished_leases() {
        super::sigterm_releases_unfinished_leases(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_mid_delivery_every_notification_arrives() {
        super::killed_mid_delivery_every_notification_arrives(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_mid_fanout_ends_with_exactly_every_row() {
        super::killed_mid_fanout_ends_with_exactly_every_row(Backend::Sqlite).await
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_releases_unfinished_leases() {
        super::sigterm_releases_unfinished_leases(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_mid_delivery_every_notification_arrives() {
        super::killed_mid_delivery_every_notification_arrives(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_mid_fanout_ends_with_exactly_every_row() {
        super::killed_mid_fanout_ends_with_exactly_every_row(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_share_the_work_without_duplicates() {
        super::two_nodes_share_the_work_without_duplicates().await
    }
}

/// SIGTERM finishes what it can within the grace period and puts the rest back in the queue,
/// so another node picks it up at once instead of after a lease expiry.
async fn sigterm_releases_unfinished_leases(b: Backend) {
    let db = database_for(b).await;
    let mock = MockPush::start().await;
    let mut node = Node::start_with(
        &db,
        &[
            ("HERALD_SHUTDOWN_GRACE_SECONDS", "1"),
            ("HERALD_DELIVERY_LEASE_SECONDS", "60"),
            ("HERALD_PROVIDER_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    let (sk, _) = node.account_with_channel().await;
    browsers(&node, &sk, &mock, 3).await;
    mock.fallback(Reply::status(201).delay(Duration::from_secs(4)));
    let users: Vec<String> = (0..3).map(|i| format!("u{i}")).collect();
    let (_, res) =
        node.call(Method::POST, "/v1/notifications", &sk, Some(json!({"to": {"users": users}, "title": "t"}))).await;
    let id = res["id"].as_str().unwrap().to_string();
    while mock.received().len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.terminate(), Some(0), "a clean exit");
    let q = |status: &str| {
        format!(
            "SELECT COUNT(*) FROM deliveries WHERE notification_id = '{id}' AND status = '{status}' AND lease_owner IS NULL AND attempts = 0"
        )
    };
    assert_eq!(db.scalar_i64(&q("queued")).await, 3, "leases released, attempts not counted");
    mock.fallback(Reply::status(201));
    let node = Node::start(&db).await;
    let n = node.wait_done(&sk, &id, Duration::from_secs(10)).await;
    assert_eq!(n["counts"]["delivered"], 3);
}

/// The CLI against a fresh SQLite file: migrate, create an account and a channel, send, and
/// the error paths (unknown user, invalid configuration).
#[test]
fn cli_commands_work_and_fail_clearly() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("data/herald.db").display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("HERALD_DATABASE_URL", &db)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, _) = run(&["migrate"]);
    assert_eq!((code, out.trim()), (Some(0), "migrations applied"));
    let (code, out, err) = run(&["account", "create", "--name", "acme", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let account: Value = serde_json::from_str(&out).unwrap();
    assert!(
        account["secret_key"].as_str().unwrap().starts_with("sk_")
            && account["public_key"].as_str().unwrap().starts_with("pk_")
    );
    let id = account["id"].to_string();
    let (code, out, err) =
        run(&["channel", "create", "--account", &id, "--type", "web_push", "--name", "web", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let channel: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(channel["is_default"], true);
    assert!(!out.contains("vapid_private_key"));
    let (code, _, err) = run(&["channel", "create", "--account", &id, "--type", "apns", "--name", "ios"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("config.team_id"), "{err}");
    let (code, _, err) = run(&["send", "--account", &id, "--user", "nobody", "--title", "hi"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = run(&["vapid", "generate"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("public_key=B"), "{out}");
    let (code, out, _) = run(&["config"]);
    assert!(code == Some(0) && out.contains("listen = \"127.0.0.1:8080\""));
    let out = Command::new(env!("CARGO_BIN_EXE_herald")).arg("serve").env("HERALD_LISTEN", "nowhere").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`listen`"));
    std::fs::remove_dir_all(&dir).unwrap();
}
