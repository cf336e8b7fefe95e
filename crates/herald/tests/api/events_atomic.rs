//! Events are committed with their change: 1,000 registrations, moves, deactivations and
//! deletions run against a `herald serve` that is SIGKILLed at random points and restarted.
//! Afterwards every change that committed has its event in the outbox and delivered (the same
//! `webhook-id` on any repeat), and no event names a change that did not commit.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock_push::MockPush;
use crate::process::{Node, database_for};

const OPS: usize = 1000;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One operation; errors (the node died under it) are expected and ignored.
async fn op(base: String, sk: String, seed: u64, known: Vec<i64>) -> Option<i64> {
    let rng = &mut Rng(seed);
    let sk = sk.as_str();
    let user = format!("u{}", rng.below(40));
    let endpoint = format!("https://fcm.googleapis.com/fcm/send/d{}", rng.below(150));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let url = |p: &str| format!("{base}{p}");
    let res = match rng.below(10) {
        // Registrations (new devices, and devices moving between users).
        0..=5 => {
            let body = json!({"settings": web_push_settings(&endpoint)});
            client.post(url(&format!("/v1/users/{user}/subscriptions"))).bearer_auth(sk).json(&body).send().await
        }
        6 | 7 if !known.is_empty() => {
            let id = known[rng.below(known.len() as u64) as usize];
            client
                .patch(url(&format!("/v1/subscriptions/{id}")))
                .bearer_auth(sk)
                .json(&json!({"status": "inactive"}))
                .send()
                .await
        }
        8 if !known.is_empty() => {
            let id = known[rng.below(known.len() as u64) as usize];
            client.delete(url(&format!("/v1/subscriptions/{id}"))).bearer_auth(sk).send().await
        }
        _ => client.delete(url(&format!("/v1/users/{user}"))).bearer_auth(sk).send().await,
    };
    let body: Value = res.ok()?.json().await.ok()?;
    body["id"].as_i64()
}

async fn changes_and_their_events_commit_together(b: Backend) {
    let db = database_for(b).await;
    let receiver = MockPush::start().await;
    let mut node = Node::start(&db).await;
    let (sk, _) = node.account_with_channel().await;
    let events = ["subscription.created", "subscription.updated", "subscription.deactivated", "subscription.deleted"];
    let (status, _) = node
        .call(Method::POST, "/v1/webhooks", &sk, Some(json!({"url": receiver.endpoint("hook"), "events": events})))
        .await;
    assert_eq!(status, 201);
    let mut rng = Rng(0x5EED ^ if b == Backend::Sqlite { 1 } else { 2 });
    let mut known = Vec::new();
    let mut done = 0;
    let mut kills = 0;
    while done < OPS {
        // A burst of concurrent operations, and now and then a SIGKILL in the middle of it.
        let burst = 20 + rng.below(60) as usize;
        let kill = rng.below(3) == 0;
        let kill_after = Duration::from_millis(rng.below(150));
        let handles: Vec<_> = (0..burst)
            .map(|_| tokio::spawn(op(node.base.clone(), sk.clone(), rng.below(u64::MAX - 1) + 1, known.clone())))
            .collect();
        if kill {
            tokio::time::sleep(kill_after).await;
            node.kill();
            kills += 1;
        }
        for h in handles {
            known.extend(h.await.unwrap());
        }
        done += burst;
        if kill {
            node = Node::start(&db).await;
        }
    }
    assert!(kills > 0);
    // Let the outbox drain on the last node.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.scalar_i64("SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'delivered'").await > 0 {
        assert!(Instant::now() < deadline, "the hook outbox did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every delivered request: one event id, one body.
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for r in receiver.received() {
        let id = r.headers["webhook-id"].to_str().unwrap().to_string();
        if let Some(first) = bodies.get(&id) {
            assert_eq!(first, &r.body, "a repeat of {id} carries the same event");
        }
        bodies.insert(id, r.body);
    }
    let queued = db.scalar_i64("SELECT COUNT(DISTINCT event_id) FROM webhook_deliveries").await;
    assert_eq!(bodies.len() as i64, queued, "every queued event was delivered");
    // Every subscription that exists was announced as created, with its id.
    let created: HashSet<i64> = bodies
        .values()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap())
        .filter(|e| e["type"] == "subscription.created")
        .map(|e| e["data"]["id"].as_i64().unwrap())
        .collect();
    let ids: Vec<i64> = match &db.db {
        DbConn::Sqlite(p) => sqlx::query_scalar("SELECT id FROM subscriptions").fetch_all(p).await.unwrap(),
        DbConn::Postgres(p) => sqlx::query_scalar("SELECT id FROM subscriptions").fetch_all(p).await.unwrap(),
    };
    assert!(!ids.is_empty());
    for id in &ids {
        assert!(created.contains(id), "subscription {id} committed without its created event");
    }
    // No event names a subscription that never committed: every id an event names was created.
    for body in bodies.values() {
        let e: Value = serde_json::from_slice(body).unwrap();
        let id = e["data"]["id"].as_i64().unwrap();
        assert!(created.contains(&id), "{} for {id}, which never committed", e["type"]);
    }
    eprintln!("{b:?}: {OPS} operations, {kills} SIGKILLs, {} subscriptions, {} events", ids.len(), bodies.len());
}

crate::both_backends!(changes_and_their_events_commit_together);
