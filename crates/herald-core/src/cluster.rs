//! Failover in seconds, not a lease. Every serving process is a *node* with an id that prefixes
//! all its leases (`<node>.w:<n>` for deliveries, `<node>.h:<n>` for webhooks).
//!
//! - PostgreSQL (several nodes): each node registers in the `nodes` table and heartbeats about
//!   every second; every live node also reaps, releasing at once the leases of any node silent
//!   for `node_timeout`. A node that finds itself reaped stops claiming until it has registered
//!   again (its in-flight results then no longer match their leases and are dropped: the rows
//!   are someone else's now).
//! - SQLite (one serving process, held by a lock file beside the database): at start the node
//!   releases every lease at once, since whoever held them is gone.
//!
//! Leases stay as the last resort (a node that hangs without dying).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use crate::clock::{Millis, now_ms};
use crate::store::StoreResult;

/// Storage of the node table and of leases by node.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Registers (or re-registers) a node as alive now.
    async fn register_node(&self, id: &str, now: Millis) -> StoreResult<()>;
    /// Refreshes a node's heartbeat; false when the node is no longer registered (reaped).
    async fn heartbeat_node(&self, id: &str, now: Millis) -> StoreResult<bool>;
    /// Removes the nodes silent since before `dead_before` and releases their leases, in one
    /// transaction; returns their ids and how many leases were released.
    async fn reap_nodes(&self, dead_before: Millis) -> StoreResult<(Vec<String>, u64)>;
    /// Releases every lease whose owner starts with `prefix` (all of them for `""`).
    async fn release_leases_of(&self, prefix: &str) -> StoreResult<u64>;
    /// Nodes that heartbeat since `since`.
    async fn live_nodes(&self, since: Millis) -> StoreResult<u64>;
    /// Unregisters a node on a clean shutdown.
    async fn unregister_node(&self, id: &str) -> StoreResult<()>;
}

/// This process as a node: its id, whether it may claim work, and how many nodes are alive.
#[derive(Debug)]
pub struct Node {
    id: String,
    alive: AtomicBool,
    live: AtomicU64,
}

impl Node {
    /// A fresh node id, alive, alone until the first heartbeat says otherwise.
    pub fn new() -> Arc<Node> {
        Arc::new(Node {
            id: format!("n{}", uuid::Uuid::new_v4().simple()),
            alive: AtomicBool::new(true),
            live: AtomicU64::new(1),
        })
    }

    /// The id; lease owners of this node start with `<id>.`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lease-owner prefix of one of this node's workers (`w`: deliveries, `h`: webhooks).
    pub fn owner(&self, worker: char) -> String {
        format!("{}.{worker}", self.id)
    }

    /// Whether this node may claim work (false between being reaped and registering again).
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Live nodes of the cluster (1 on SQLite), for budgets shared across the cluster.
    pub fn live_nodes(&self) -> u64 {
        self.live.load(Ordering::Relaxed).max(1)
    }
}

/// Timings of the node protocol.
#[derive(Debug, Clone, Copy)]
pub struct ClusterConfig {
    /// How often a node heartbeats and reaps.
    pub heartbeat: Duration,
    /// A node silent this long is dead: its leases are released.
    pub node_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { heartbeat: Duration::from_secs(1), node_timeout: Duration::from_secs(5) }
    }
}

/// Heartbeats and reaps until shutdown, then unregisters. `wake` is the delivery engine's: rows
/// released from a dead node are due at once.
pub async fn run<S: NodeStore + ?Sized>(
    store: Arc<S>,
    node: Arc<Node>,
    config: ClusterConfig,
    wake: Vec<Arc<Notify>>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = store.register_node(node.id(), now_ms()).await {
        tracing::error!(error = %e, "registering this node failed; retrying with the next heartbeat");
    }
    while !*shutdown.borrow() {
        beat(store.as_ref(), &node, config, &wake).await;
        tokio::select! {
            _ = tokio::time::sleep(config.heartbeat) => {}
            _ = shutdown.changed() => {}
        }
    }
    if let Err(e) = store.unregister_node(node.id()).await {
        tracing::warn!(error = %e, "unregistering this node failed; others will reap it");
    }
}

/// One heartbeat: prove this node alive (registering again if it was reaped), then reap others.
async fn beat<S: NodeStore + ?Sized>(store: &S, node: &Node, config: ClusterConfig, wake: &[Arc<Notify>]) {
    let now = now_ms();
    match store.heartbeat_node(node.id(), now).await {
        Ok(true) => node.alive.store(true, Ordering::Release),
        Ok(false) => {
            // Declared dead (we were silent too long): our leases were released and may be
            // claimed by others. Claim nothing until registered again.
            node.alive.store(false, Ordering::Release);
            tracing::warn!(node = node.id(), "this node was declared dead; registering again");
            match store.register_node(node.id(), now_ms()).await {
                Ok(()) => node.alive.store(true, Ordering::Release),
                Err(e) => tracing::error!(error = %e, "registering this node again failed"),
            }
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
    }
    let timeout = config.node_timeout.as_millis() as Millis;
    match store.reap_nodes(now - timeout).await {
        Ok((dead, released)) if !dead.is_empty() => {
            tracing::warn!(nodes = ?dead, released, "released the leases of silent nodes");
            wake.iter().for_each(|w| w.notify_one());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "reaping silent nodes failed"),
    }
    if let Ok(n) = store.live_nodes(now - timeout).await {
        node.live.store(n.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A node table in memory; `refuse_register` simulates a database that will not take us back.
    #[derive(Default)]
    struct Table {
        nodes: Mutex<Vec<(String, Millis)>>,
        refuse_register: AtomicBool,
    }

    #[async_trait]
    impl NodeStore for Table {
        async fn register_node(&self, id: &str, now: Millis) -> StoreResult<()> {
            if self.refuse_register.load(Ordering::Relaxed) {
                return Err(crate::StoreError::Corrupt("down".into()));
            }
            let mut n = self.nodes.lock().unwrap();
            n.retain(|(i, _)| i != id);
            n.push((id.into(), now));
            Ok(())
        }
        async fn heartbeat_node(&self, id: &str, now: Millis) -> StoreResult<bool> {
            let mut n = self.nodes.lock().unwrap();
            Ok(n.iter_mut().find(|(i, _)| i == id).map(|e| e.1 = now).is_some())
        }
        async fn reap_nodes(&self, dead_before: Millis) -> StoreResult<(Vec<String>, u64)> {
            let mut n = self.nodes.lock().unwrap();
            let dead: Vec<String> = n.iter().filter(|(_, t)| *t < dead_before).map(|(i, _)| i.clone()).collect();
            n.retain(|(_, t)| *t >= dead_before);
            Ok((dead, 0))
        }
        async fn release_leases_of(&self, _: &str) -> StoreResult<u64> {
            Ok(0)
        }
        async fn live_nodes(&self, since: Millis) -> StoreResult<u64> {
            Ok(self.nodes.lock().unwrap().iter().filter(|(_, t)| *t >= since).count() as u64)
        }
        async fn unregister_node(&self, id: &str) -> StoreResult<()> {
            self.nodes.lock().unwrap().retain(|(i, _)| i != id);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_reaped_node_stops_claiming_until_it_registers_again() {
        let table = Table::default();
        let node = Node::new();
        let config = ClusterConfig::default();
        table.register_node(node.id(), now_ms()).await.unwrap();
        table.register_node("other", now_ms()).await.unwrap();
        beat(&table, &node, config, &[]).await;
        assert!(node.alive());
        assert_eq!(node.live_nodes(), 2, "budgets are shared by both");
        // Another node reaped us while we were silent, and the database refuses us for now.
        table.unregister_node(node.id()).await.unwrap();
        table.refuse_register.store(true, Ordering::Relaxed);
        beat(&table, &node, config, &[]).await;
        assert!(!node.alive(), "declared dead: no claims");
        table.refuse_register.store(false, Ordering::Relaxed);
        beat(&table, &node, config, &[]).await;
        assert!(node.alive(), "registered again");
        // A node silent past the timeout is reaped by the live one.
        table.nodes.lock().unwrap().iter_mut().filter(|(i, _)| i == "other").for_each(|e| e.1 = 0);
        let wake = Arc::new(Notify::new());
        beat(&table, &node, config, std::slice::from_ref(&wake)).await;
        assert_eq!(node.live_nodes(), 1);
        assert!(tokio::time::timeout(Duration::from_millis(10), wake.notified()).await.is_ok(), "workers woken");
    }
}
