//! Failover in seconds, measured on the hanging-push-service scenario: deliveries in flight to a
//! push service that never answers when their node dies are sent again within 5 s of a restart
//! (SQLite, where `herald serve` holds the database's lock and releases every lease at start)
//! and within 10 s of a SIGKILL while another node keeps running (PostgreSQL, node heartbeats).
//! Leases are 60 s here, so nothing in these tests is rescued by a lease expiring.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::mock_push::{MockPush, Reply};
use crate::process::{Node, browsers, database_for, node_url};

const IN_FLIGHT: usize = 200;
/// Long leases and a long provider timeout: a hanging send stays in flight until its node dies.
const SLOW: &[(&str, &str)] = &[("HERALD_DELIVERY_LEASE_SECONDS", "60"), ("HERALD_PROVIDER_TIMEOUT_MS", "30000")];

/// Sends to `IN_FLIGHT` browsers through a push service that hangs, and waits until every send
/// is in flight; returns the notification id.
async fn hang_everything(node: &Node, sk: &str, mock: &MockPush) -> String {
    mock.fallback(Reply::status(201).delay(Duration::from_secs(120)));
    let users: Vec<String> = (0..IN_FLIGHT).map(|i| format!("u{i}")).collect();
    let (status, res) =
        node.call(Method::POST, "/v1/notifications", sk, Some(json!({"to": {"users": users}, "title": "t"}))).await;
    assert_eq!(status, 202, "{res}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.received().len() < IN_FLIGHT {
        assert!(Instant::now() < deadline, "only {} of {IN_FLIGHT} sends started", mock.received().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    res["id"].as_str().unwrap().to_string()
}

/// Waits until the mock has received `n` requests; returns how long that took.
async fn resent_within(mock: &MockPush, n: usize, limit: Duration, since: Instant) -> Duration {
    loop {
        if mock.received().len() >= n {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit * 3,
            "only {} of {n} requests after {:?}",
            mock.received().len(),
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sqlite_restart_resends_in_flight_deliveries_at_once() {
    let db = database_for(Backend::Sqlite).await;
    let mock = MockPush::start().await;
    let mut node = Node::start_with(&db, SLOW).await;
    let (sk, _) = node.account_with_channel().await;
    browsers(&node, &sk, &mock, IN_FLIGHT).await;
    let id = hang_everything(&node, &sk, &mock).await;
    node.kill();
    mock.fallback(Reply::status(201));
    let restarted = Instant::now();
    let node = Node::start_with(&db, SLOW).await;
    let took = resent_within(&mock, 2 * IN_FLIGHT, Duration::from_secs(5), restarted).await;
    eprintln!("SQLite: {IN_FLIGHT} in-flight deliveries re-sent {took:?} after the restart began");
    assert!(took <= Duration::from_secs(5), "re-sent after {took:?}");
    let n = node.wait_done(&sk, &id, Duration::from_secs(30)).await;
    assert_eq!(n["counts"]["delivered"], IN_FLIGHT, "{n}");
    assert_eq!(mock.received().len(), 2 * IN_FLIGHT, "duplicates only for the rows in flight at the kill");
}

async fn a_second_server_on_one_sqlite_file_refuses_to_start() {
    let db = database_for(Backend::Sqlite).await;
    let url = node_url(&db);
    let node = Node::start(&db).await;
    let second = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    let path = url.trim_start_matches("sqlite://");
    assert!(stderr.contains("already serving") && stderr.contains(path), "{stderr}");
    // The CLI keeps working against the database while it is served.
    let cli = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["account", "create", "--name", "cli", "--json"])
        .env("HERALD_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let (status, _) = node.call(Method::GET, "/admin/v1/accounts", ADMIN_TOKEN, None).await;
    assert_eq!(status, 200);
}

async fn postgres_a_dead_nodes_deliveries_move_within_seconds() {
    let db = database_for(Backend::Postgres).await;
    let mock = MockPush::start().await;
    let mut a = Node::start_with(&db, SLOW).await;
    let (sk, _) = a.account_with_channel().await;
    browsers(&a, &sk, &mock, IN_FLIGHT).await;
    // Only A runs while the sends start, so A holds every lease.
    let id = hang_everything(&a, &sk, &mock).await;
    let b = Node::start_with(&db, SLOW).await;
    // A, B and the test's own server (B registers just after it answers /readyz).
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.scalar_i64("SELECT COUNT(*) FROM nodes").await < 3 {
        assert!(Instant::now() < deadline, "B never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mock.fallback(Reply::status(201));
    a.kill();
    let killed = Instant::now();
    let took = resent_within(&mock, 2 * IN_FLIGHT, Duration::from_secs(10), killed).await;
    eprintln!("PostgreSQL: {IN_FLIGHT} in-flight deliveries of a killed node re-sent {took:?} after the SIGKILL");
    assert!(took <= Duration::from_secs(10), "re-sent after {took:?}");
    let n = b.wait_done(&sk, &id, Duration::from_secs(30)).await;
    assert_eq!(n["counts"]["delivered"], IN_FLIGHT, "{n}");
    assert_eq!(mock.received().len(), 2 * IN_FLIGHT, "duplicates only for the rows in flight at the kill");
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM nodes").await, 2, "the dead node was removed, the others remain");
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_resends_in_flight_deliveries_at_once() {
        super::sqlite_restart_resends_in_flight_deliveries_at_once().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_server_on_one_sqlite_file_refuses_to_start() {
        super::a_second_server_on_one_sqlite_file_refuses_to_start().await
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_nodes_deliveries_move_within_seconds() {
        super::postgres_a_dead_nodes_deliveries_move_within_seconds().await
    }
}
