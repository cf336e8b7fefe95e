//! Secrets at rest: the database (SQLite's raw file and write-ahead log, PostgreSQL's raw
//! columns) never holds a channel key, webhook signing secret or callback credential in clear,
//! while Herald still signs and sends with them; the SQLite key file, PostgreSQL's key
//! requirement, sealing of rows written before encryption, and key rotation.

use std::process::Command;
use std::time::{Duration, Instant};

use herald::{App, Config};
use herald_providers::mock::{MockApns, MockApnsConfig, MockFcm, MockFcmConfig, fixtures};
use herald_providers::webpush::testing::UaKeyPair;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::MockPush;

/// A bnotify callback credential (Basic `user:password`), distinctive enough to search for.
const CALLBACK_AUTH: &str = "aGVyYWxkLWNhbGxiYWNrOnMzY3JldC1wYXNzd29yZC0wMTIzNDU2Nzg5";

/// An account with one channel of each type (the Web Push one with a callback), a webhook, and
/// a user subscribed on all three, each provider a mock that checks Herald's credentials.
struct Seeded {
    sk: String,
    web_channel: String,
    webhook_secret: String,
    push: MockPush,
    hooks: MockPush,
    apns: MockApns,
    _fcm: MockFcm,
}

async fn seed(app: &TestApp) -> Seeded {
    let (_, sk, _) = app.account(false).await;
    let (push, hooks) = (MockPush::start().await, MockPush::start().await);
    let apns = MockApns::start(MockApnsConfig::with_test_key()).await.unwrap();
    let fcm = MockFcm::start(MockFcmConfig::with_test_key()).await.unwrap();
    let web = json!({"subject": "mailto:ops@example.com", "callback_url": hooks.endpoint("cb"), "callback_auth": CALLBACK_AUTH});
    let mut ids = Vec::new();
    for (kind, config) in [
        ("web_push", web),
        ("apns", fixtures::apns_channel_config(apns.base_url())),
        ("fcm", fixtures::fcm_channel_config(&fcm)),
    ] {
        let (status, c) = app.post("/v1/channels", &sk, json!({"name": kind, "type": kind, "config": config})).await;
        assert_eq!(status, 201, "{c}");
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let (status, w) = app
        .post("/v1/webhooks", &sk, json!({"url": hooks.endpoint("hook"), "events": ["notification.delivered"]}))
        .await;
    assert_eq!(status, 201, "{w}");
    let ua = UaKeyPair::generate();
    let web_settings = json!({"endpoint": push.endpoint("alice"), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
    for (channel, settings) in [
        (&ids[0], web_settings),
        (&ids[1], json!({"token": fixtures::TEST_DEVICE_TOKEN})),
        (&ids[2], json!({"token": "fcm-token:APA91b-secrets"})),
    ] {
        let body = json!({"channel_id": channel, "settings": settings});
        let (status, s) = app.post("/v1/users/alice/subscriptions", &sk, body).await;
        assert_eq!(status, 201, "{s}");
    }
    Seeded {
        sk,
        web_channel: ids[0].clone(),
        webhook_secret: w["secret"].as_str().unwrap().to_string(),
        push,
        hooks,
        apns,
        _fcm: fcm,
    }
}

/// Herald signs and sends with every secret: a push to each provider (each mock checks the
/// VAPID, ES256 or RS256 credential), webhook events that verify, and a callback with its
/// Basic credential.
async fn assert_delivers(app: &TestApp, s: &Seeded) {
    let count = |path: &str| s.hooks.received().iter().filter(|r| r.path == path).count();
    let seen = s.hooks.received().len();
    let (hooks_before, callbacks_before) = (count("/push/hook"), count("/push/cb"));
    let pushes_before = s.push.received().len();
    let sent = app.send(&s.sk, json!({"to": {"user": "alice"}, "title": "hi"})).await;
    let n = app.wait_done(&s.sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["delivered"], 3, "{n}");
    assert!(s.apns.rejected().is_empty(), "{:?}", s.apns.rejected());
    let web = &s.push.received()[pushes_before];
    assert!(web.headers["authorization"].to_str().unwrap().starts_with("vapid t="));
    let user = format!("cb{callbacks_before}");
    let body = json!({"channel_id": s.web_channel, "settings": web_push_settings(&s.push.endpoint(&user))});
    assert_eq!(app.post(&format!("/v1/users/{user}/subscriptions"), &s.sk, body).await.0, 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("/push/hook") < hooks_before + 3 || count("/push/cb") < callbacks_before + 1 {
        assert!(Instant::now() < deadline, "webhook and callback requests did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let verifier = standardwebhooks::Webhook::new(&s.webhook_secret).unwrap();
    for r in s.hooks.received().into_iter().skip(seen) {
        match r.path.as_str() {
            "/push/hook" => verifier.verify(&r.body, &r.headers).expect("webhook signature verifies"),
            _ => assert_eq!(r.headers["authorization"], format!("Basic {CALLBACK_AUTH}")),
        }
    }
}

/// Every secret of `seed`, as it would appear in clear: the VAPID private key (Herald made it,
/// so it is decrypted from the stored row with the server's key — opening a store instead would
/// seal whatever is in clear before the test looks), a line of each PEM body, the webhook and
/// callback secrets.
async fn needles(app: &TestApp, s: &Seeded) -> Vec<String> {
    let keyring = herald::secrets::keyring(&app.config).unwrap();
    let sql = format!("SELECT config FROM channels WHERE id = '{}'", s.web_channel);
    let stored: String = match &app.db {
        DbConn::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap(),
        DbConn::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap(),
    };
    let config = keyring.open_channel_config(&s.web_channel, serde_json::from_str(&stored).unwrap()).unwrap();
    let vapid = config["vapid_private_key"].as_str().unwrap().to_string();
    assert!(vapid.len() > 100, "{vapid}");
    let pem_line = |pem: &str| pem.lines().nth(2).unwrap().to_string();
    vec![
        vapid,
        pem_line(fixtures::EC_PRIVATE_PEM),
        pem_line(fixtures::RSA_PRIVATE_PEM),
        s.webhook_secret.clone(),
        s.webhook_secret["whsec_".len()..].to_string(),
        CALLBACK_AUTH.to_string(),
    ]
}

/// The stored secret columns: every channel config and webhook secret.
async fn stored(app: &TestApp) -> Vec<String> {
    let sql = "SELECT config FROM channels UNION ALL SELECT secret FROM webhooks";
    match &app.db {
        DbConn::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        DbConn::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    }
}

/// The master key id every sealed value in the database is under.
async fn key_ids(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> = stored(app)
        .await
        .iter()
        .flat_map(|text| {
            text.match_indices("enc:v1:").map(|(i, _)| text[i + 7..i + 15].to_string()).collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn key_id(key: &str) -> String {
    herald_core::secrets::MasterKey::parse(key).unwrap().id().to_string()
}

#[track_caller]
fn assert_absent(haystack: &[u8], needles: &[String], what: &str) {
    for needle in needles {
        let found = haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "{what} holds a secret in clear: {}…", &needle[..12]);
    }
}

async fn assert_nothing_in_clear(app: &TestApp, needles: &[String]) {
    let columns = stored(app).await;
    assert_eq!(columns.len(), 4, "three channels and a webhook");
    assert_absent(columns.join("\n").as_bytes(), needles, "a stored column");
    if let DbConn::Sqlite(_) = app.db {
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            let path = format!("{}{suffix}", app.database_url);
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert_absent(&bytes, needles, &path);
            all.extend(bytes);
        }
        // The scan sees the stored rows: the channels' public settings are there in clear.
        let control = b"mailto:ops@example.com";
        assert!(all.windows(control.len()).any(|w| w == control), "the raw scan found no channel at all");
    }
}

async fn secrets_are_sealed_and_still_used(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = seed(&app).await;
    assert_delivers(&app, &s).await;
    let needles = needles(&app, &s).await;
    assert_nothing_in_clear(&app, &needles).await;
    let webhook: String = match &app.db {
        DbConn::Sqlite(p) => sqlx::query_scalar("SELECT secret FROM webhooks").fetch_one(p).await.unwrap(),
        DbConn::Postgres(p) => sqlx::query_scalar("SELECT secret FROM webhooks").fetch_one(p).await.unwrap(),
    };
    let current = herald::secrets::keyring(&app.config).unwrap().current_id().to_string();
    assert!(webhook.starts_with(&format!("enc:v1:{current}:")), "{webhook}");
    assert_eq!(key_ids(&app).await, vec![current]);
    // A sealed value moved to another row does not open there: no account signs with another's key.
    let (_, sk2, _) = app.account(false).await;
    let other = app.web_push_channel(&sk2).await;
    let stolen = &s.web_channel;
    app.execute(&format!(
        "UPDATE channels SET config = (SELECT config FROM channels WHERE id = '{stolen}') WHERE id = '{other}'"
    ))
    .await;
    assert_eq!(app.get(&format!("/v1/channels/{other}"), &sk2).await.0, 500);
}

async fn rows_written_in_clear_are_sealed_on_start(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let s = seed(&app).await;
    // What an older Herald stored: the configs and the webhook secret in clear.
    let apns = fixtures::apns_channel_config(s.apns.base_url());
    app.execute(&format!("UPDATE channels SET config = '{apns}' WHERE type = 'apns'")).await;
    let vapid = herald_core::keys::generate_vapid();
    let web = json!({"subject": "mailto:ops@example.com", "callback_url": s.hooks.endpoint("cb"), "callback_auth": CALLBACK_AUTH,
        "vapid_private_key": vapid.private_pkcs8_b64, "vapid_public_key": vapid.public_key_b64url});
    app.execute(&format!("UPDATE channels SET config = '{web}' WHERE id = '{}'", s.web_channel)).await;
    let whsec = "whsec_cGxhaW50ZXh0LXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3ODk=";
    app.execute(&format!("UPDATE webhooks SET secret = '{whsec}'")).await;
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM channels WHERE config LIKE '%BEGIN PRIVATE KEY%'").await, 1);

    app.restart_with(|_| {}).await;
    let needles = vec![
        web["vapid_private_key"].as_str().unwrap().to_string(),
        fixtures::EC_PRIVATE_PEM.lines().nth(2).unwrap().to_string(),
        CALLBACK_AUTH.to_string(),
        whsec.to_string(),
    ];
    let columns = stored(&app).await;
    assert_absent(columns.join("\n").as_bytes(), &needles, "a stored column");
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM channels WHERE config LIKE '%BEGIN PRIVATE KEY%'").await, 0);
    assert_eq!(key_ids(&app).await.len(), 1);
    // Still read and used: the APNs key signs, the callback and the old webhook secret verify.
    let s = Seeded { webhook_secret: whsec.to_string(), ..s };
    assert_delivers(&app, &s).await;
    // Starting again changes nothing: sealed values are recognised.
    let before = stored(&app).await;
    app.reopen().await;
    assert_eq!(stored(&app).await, before);
}

async fn keys_rotate_without_downtime(b: Backend) {
    let (key_a, key_b) = (herald_core::secrets::generate_key(), herald_core::secrets::generate_key());
    let mut app = TestApp::spawn_with(b, |c| c.secret_key = key_a.clone()).await;
    let s = seed(&app).await;
    assert_eq!(key_ids(&app).await, vec![key_id(&key_a)]);

    // The new key with the old one as previous: everything still reads, nothing moves yet.
    app.restart_with(|c| (c.secret_key, c.secret_key_previous) = (key_b.clone(), key_a.clone())).await;
    assert_delivers(&app, &s).await;
    assert_eq!(key_ids(&app).await, vec![key_id(&key_a)]);

    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["secrets", "rotate"])
        .env("HERALD_DATABASE_URL", &app.database_url)
        .envs(app.secret_env())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("channels re-encrypted: 3\nwebhooks re-encrypted: 1\n"), "{stdout}");
    assert_eq!(key_ids(&app).await, vec![key_id(&key_b)]);

    // Only the new key: everything reads. Only the old one: start-up refuses, naming the key.
    app.restart_with(|c| c.secret_key_previous = String::new()).await;
    assert_delivers(&app, &s).await;
    let mut old = app.config.clone();
    old.secret_key = key_a.clone();
    let err = App::build(&old).await.err().expect("the old key alone cannot open the secrets");
    assert!(err.contains(&key_id(&key_b)) && err.contains("secret_key_previous"), "{err}");
}

both_backends!(
    secrets_are_sealed_and_still_used,
    rows_written_in_clear_are_sealed_on_start,
    keys_rotate_without_downtime
);

/// With nothing configured, SQLite gets a key file beside the database, private to its owner,
/// and keeps using it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_creates_a_private_key_file() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    assert!(app.config.secret_key.is_empty());
    let path = std::path::Path::new(&app.database_url).with_file_name("herald.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&path).unwrap();
    let s = seed(&app).await;
    assert_eq!(key_ids(&app).await, vec![key_id(&key)]);
    app.restart_with(|_| {}).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "the same key on every start");
    assert_delivers(&app, &s).await;
}

/// PostgreSQL has no key file to fall back on: without `secret_key` Herald does not start, in
/// process or as the binary, and says which setting is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_a_key_refuses_to_start() {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database_url = pg_admin_url();
    let err = App::build(&config).await.err().expect("no key, no start");
    assert!(err.contains("`secret_key`"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD_DATABASE_URL", pg_admin_url())
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env_remove("HERALD_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`secret_key`") && stderr.contains("HERALD_SECRET_KEY"), "{stderr}");
}

/// `herald secrets generate` prints a key `secret_key` accepts, a new one each time.
#[test]
fn generated_keys_are_fresh_and_valid() {
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_herald")).args(["secrets", "generate"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    assert_eq!(key_id(&a).len(), 8);
}
