//! The delivery engine (DESIGN.md section 5).
//!
//! Three loops share one process:
//! - the **dispatcher** leases due deliveries in batches and starts a send for each, bounded by
//!   a global in-flight limit and a per-host limit; no transaction is open while a send is;
//! - the **writer** collects outcomes and writes them back in batches, one transaction each;
//! - the **fan-out** expands broadcasts into delivery rows, ~1000 per transaction, from a
//!   stored cursor, so a crash resumes exactly where the last commit left off.
//!
//! A send wakes the dispatcher in-process; a slow poll covers other nodes and scheduled rows.
//! Every row is leased, so a crashed worker's rows come back after the lease: at-least-once,
//! with the same message id on every attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::{Content, Job, Options, Outcome, Provider, Target};
use crate::clock::{Millis, now_ms};
use crate::cluster::Node;
use crate::keys;
use crate::model::{Channel, ChannelType, DeliveryStatus, Environment, SubscriptionKind};
use crate::outbox::{Claimed, DeliveryResult};
use crate::store::Store;
use crate::tokens::{self, Purpose, TokenKey};

/// Tuning of the engine; every knob is in the server's configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rows leased per claim.
    pub batch: u32,
    /// Sends in flight at once, over all hosts.
    pub max_in_flight: usize,
    /// Sends in flight at once to one host.
    pub per_host: usize,
    /// How long a claimed row stays leased; must exceed the provider timeout.
    pub lease: Duration,
    /// Attempts before a transiently failing delivery is `failed`.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Safety poll for other nodes' rows and scheduled sends.
    pub poll: Duration,
    /// Subscriptions expanded per fan-out transaction.
    pub fanout_batch: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch: 256,
            max_in_flight: 1024,
            per_host: 256,
            lease: Duration::from_secs(60),
            max_attempts: 10,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
            fanout_batch: 1000,
        }
    }
}

/// The providers, by channel type.
pub type Providers = HashMap<ChannelType, Arc<dyn Provider>>;

/// The delivery engine of one process.
pub struct Engine {
    store: Arc<dyn Store>,
    providers: Arc<Providers>,
    config: EngineConfig,
    wake: Arc<Notify>,
    owner: String,
    /// This process in the cluster: claims stop while it is declared dead.
    node: Arc<Node>,
    claims: AtomicU64,
    /// The receipt-token key, read on first use.
    tokens: tokio::sync::OnceCell<TokenKey>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    channels: Mutex<HashMap<String, CachedChannel>>,
    hooks_wake: Arc<Notify>,
}

/// A channel as last read (`None`: deleted) and when.
type CachedChannel = (Option<Arc<Channel>>, Instant);

/// How long a channel's configuration is reused before it is read again.
const CHANNEL_CACHE: Duration = Duration::from_secs(2);

impl Engine {
    /// Builds an engine; `wake` is the handle the service layer notifies after each send.
    pub fn new(
        store: Arc<dyn Store>,
        providers: Arc<Providers>,
        config: EngineConfig,
        wake: Arc<Notify>,
        hooks_wake: Arc<Notify>,
        node: Arc<Node>,
    ) -> Arc<Engine> {
        let owner = node.owner('w');
        Arc::new(Engine {
            node,
            store,
            providers,
            config,
            wake,
            owner,
            claims: AtomicU64::new(0),
            tokens: tokio::sync::OnceCell::new(),
            hosts: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            hooks_wake,
        })
    }

    /// Runs until `shutdown` turns true, then finishes in-flight sends (up to `grace`), writes
    /// their results and releases any leases still held.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(self.clone().write_results(rx));
        let fanout = tokio::spawn(self.clone().fanout_loop(shutdown.clone()));
        if let Some(mut signals) = self.store.work_signals().await {
            // Another node queued work: wake the dispatcher and the fan-out now, not at the poll.
            let wake = self.wake.clone();
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    wake_all(&wake);
                }
            });
        }
        let in_flight = Arc::new(Semaphore::new(self.config.max_in_flight));
        self.dispatch_loop(&mut shutdown, in_flight.clone(), tx).await;
        // Wait for sends to finish: each holds a permit until its result is queued.
        let all = u32::try_from(self.config.max_in_flight).unwrap_or(u32::MAX);
        let finished = tokio::time::timeout(grace, in_flight.acquire_many(all)).await.is_ok();
        if finished {
            let _ = writer.await;
        } else {
            // Sends still running past the grace period are abandoned: the writer only ends when
            // they do, so give it a moment for results already queued, then release the leases.
            // A late result quotes a released lease and is ignored.
            tracing::warn!("shutdown grace period over with sends in flight; releasing their leases");
            let _ = tokio::time::timeout(Duration::from_millis(500), writer).await;
        }
        let _ = fanout.await;
        match self.store.release_leases(&self.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released leases of unfinished deliveries"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not release leases; they expire on their own"),
        }
    }

    async fn dispatch_loop(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        in_flight: Arc<Semaphore>,
        tx: mpsc::UnboundedSender<DeliveryResult>,
    ) {
        while !*shutdown.borrow() {
            if !self.node.alive() {
                // Declared dead by the others: our leases are theirs until we register again.
                self.idle(shutdown, Duration::from_millis(200)).await;
                continue;
            }
            let free = in_flight.available_permits().min(self.config.batch as usize);
            if free == 0 {
                // Saturated: wait for one send to finish before claiming more.
                drop(in_flight.clone().acquire_owned().await);
                continue;
            }
            let lease = format!("{}:{}", self.owner, self.claims.fetch_add(1, Ordering::Relaxed));
            let lease_ms = self.config.lease.as_millis() as i64;
            let claimed = match self.store.claim_deliveries(&lease, now_ms(), lease_ms, free as u32).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed");
                    self.idle(shutdown, Duration::from_millis(500)).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                let wait = self.idle_wait().await;
                self.idle(shutdown, wait).await;
                continue;
            }
            for row in claimed {
                self.start(row, &in_flight, &tx).await;
            }
        }
    }

    /// How long to sleep with nothing due: until the next row is due, at most one poll.
    async fn idle_wait(&self) -> Duration {
        match self.store.next_due_at().await {
            Ok(Some(due)) => {
                Duration::from_millis((due - now_ms()).clamp(1, self.config.poll.as_millis() as i64) as u64)
            }
            _ => self.config.poll,
        }
    }

    async fn idle(&self, shutdown: &mut watch::Receiver<bool>, wait: Duration) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Prepares a claimed row and spawns its send, or records at once why it needs none.
    async fn start(&self, row: Claimed, in_flight: &Arc<Semaphore>, tx: &mpsc::UnboundedSender<DeliveryResult>) {
        let job = match self.prepare(&row).await {
            Ok(job) => job,
            Err((status, reason)) => {
                let _ = tx.send(result(&row, status, None, Some(reason), None));
                return;
            }
        };
        let provider = self.providers[&job.channel.channel_type].clone();
        let host = self.host_limit(&provider.host_key(&job)).await;
        let permit = in_flight.clone().acquire_owned().await.expect("the in-flight semaphore is never closed");
        let tx = tx.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let _host: OwnedSemaphorePermit = host.acquire_owned().await.expect("host semaphores are never closed");
            let started = Instant::now();
            let outcome = provider.send(&job).await;
            let result = settle(&row, &job, outcome, &config);
            record_metrics(&job, &row, &result, started.elapsed());
            let _ = tx.send(result);
            drop(permit);
        });
    }

    async fn prepare(&self, row: &Claimed) -> Result<Job, (DeliveryStatus, String)> {
        let failed = |reason: &str| (DeliveryStatus::Failed, reason.to_string());
        if now_ms() >= row.expires_at {
            return Err((DeliveryStatus::Expired, "ttl passed before delivery".into()));
        }
        if !row.subscription_active {
            return Err(failed("subscription is no longer active"));
        }
        let channel =
            self.channel(row.account_id, &row.channel_id).await.ok_or_else(|| failed("channel was deleted"))?;
        if !self.providers.contains_key(&channel.channel_type) {
            return Err(failed("no provider for this channel type"));
        }
        let content: Content = serde_json::from_str(&row.content).map_err(|_| failed("stored content is corrupt"))?;
        let options: Options = serde_json::from_str(&row.options).map_err(|_| failed("stored options are corrupt"))?;
        let settings = serde_json::from_str(&row.settings).map_err(|_| failed("stored settings are corrupt"))?;
        Ok(Job {
            delivery_id: row.delivery_id,
            message_id: row.message_id.clone(),
            notification_id: row.notification_id.clone(),
            attempt: row.attempts.max(1) as u32,
            channel,
            target: Target {
                subscription_id: row.subscription_id,
                identifier: row.identifier.clone(),
                settings,
                kind: SubscriptionKind::parse(&row.kind).unwrap_or(SubscriptionKind::Standard),
                environment: Environment::parse(&row.environment).unwrap_or(Environment::Production),
            },
            content: Arc::new(content),
            options: Arc::new(options),
            expires_at: row.expires_at,
            receipt: self.receipt_key().await.map(|k| k.sign(Purpose::Receipt, row.delivery_id)),
        })
    }

    /// The receipt-token key, read from the database once.
    async fn receipt_key(&self) -> Option<&TokenKey> {
        let store = self.store.clone();
        let key = self
            .tokens
            .get_or_try_init(|| async move {
                let secret = store.deployment_secret(tokens::SECRET_NAME, &keys::random_bytes::<32>()).await?;
                Ok::<_, crate::StoreError>(TokenKey::new(&secret))
            })
            .await;
        key.inspect_err(|e| tracing::error!(error = %e, "cannot read the receipt key; pushes go without receipts")).ok()
    }

    async fn channel(&self, account_id: i64, id: &str) -> Option<Arc<Channel>> {
        let mut cache = self.channels.lock().await;
        if let Some((channel, at)) = cache.get(id)
            && at.elapsed() < CHANNEL_CACHE
        {
            return channel.clone();
        }
        let fresh = match self.store.get_channel(account_id, id).await {
            Ok(c) => c.map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, "reading channel failed");
                return cache.get(id).and_then(|(c, _)| c.clone());
            }
        };
        cache.insert(id.to_string(), (fresh.clone(), Instant::now()));
        fresh
    }

    async fn host_limit(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().await;
        hosts.entry(host.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.config.per_host))).clone()
    }

    /// Writes results in batches: whatever arrived while the previous batch was being written.
    async fn write_results(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<DeliveryResult>) {
        let mut batch = Vec::with_capacity(512);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let mut delay = Duration::from_millis(50);
            while let Err(e) = self.store.record_results(&batch).await {
                // Never drop results: retry until the database is back. Leases would otherwise
                // expire and the rows be sent again, which is allowed but wasteful.
                tracing::error!(error = %e, rows = batch.len(), "writing delivery results failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            // The results' events were queued in the same transaction.
            if batch.iter().any(|r| r.status.is_final()) {
                self.hooks_wake.notify_one();
            }
            batch.clear();
        }
    }

    async fn fanout_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let pending = self.store.pending_fanouts(16).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "listing pending fan-outs failed");
                Vec::new()
            });
            if pending.is_empty() {
                self.idle(&mut shutdown, self.config.poll).await;
                continue;
            }
            for n in pending {
                self.expand(n, &shutdown).await;
            }
        }
    }

    /// Expands one broadcast step by step until done (or shutdown); each step is durable.
    async fn expand(&self, mut n: crate::model::Notification, shutdown: &watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.store.fanout_step(&n, self.config.fanout_batch).await {
                Ok(step) => {
                    if step.added > 0 {
                        wake_all(&self.wake);
                    }
                    if step.done {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, notification = %n.id, "fan-out step failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            match self.store.get_notification(n.account_id, &n.id).await {
                Ok(Some(fresh)) if fresh.fanout_status == crate::model::FanoutStatus::Pending => n = fresh,
                _ => return,
            }
        }
    }
}

/// Wakes every loop waiting on `wake` (the dispatcher and the fan-out share it), and leaves a
/// permit for one that is not waiting yet, so no wake-up is lost to the wrong loop.
pub fn wake_all(wake: &Notify) {
    wake.notify_waiters();
    wake.notify_one();
}

fn result(
    row: &Claimed,
    status: DeliveryStatus,
    provider_status: Option<u16>,
    reason: Option<String>,
    outcome: Option<Outcome>,
) -> DeliveryResult {
    DeliveryResult {
        lease: row.lease.clone(),
        delivery_id: row.delivery_id,
        account_id: row.account_id,
        notification_id: row.notification_id.clone(),
        subscription_id: row.subscription_id,
        channel_id: row.channel_id.clone(),
        status,
        provider_status,
        provider_reason: reason,
        provider_message_id: None,
        next_attempt_at: now_ms(),
        outcome,
    }
}

/// Turns a provider's answer into the row's next state.
/// Counts one attempt by provider and outcome, and times it.
fn record_metrics(job: &Job, row: &Claimed, r: &DeliveryResult, took: Duration) {
    let m = crate::metrics::global();
    let provider = job.channel.channel_type.as_str();
    let outcome = match (&r.status, &r.outcome) {
        (DeliveryStatus::Delivered, _) => "delivered",
        (DeliveryStatus::Queued, _) => "retried",
        (DeliveryStatus::Expired, _) => "expired",
        (_, Some(Outcome::Gone { .. })) => "gone",
        (_, Some(Outcome::ChannelError { .. })) => "channel_error",
        _ => "failed",
    };
    m.inc("herald_deliveries_total", &[("provider", provider), ("outcome", outcome)]);
    m.observe("herald_provider_request_duration_seconds", &[("provider", provider)], took.as_secs_f64());
    if r.status != DeliveryStatus::Queued {
        let latency = (now_ms() - row.due_at).max(0) as f64 / 1000.0;
        m.observe("herald_delivery_latency_seconds", &[("provider", provider)], latency);
    }
}

fn settle(row: &Claimed, job: &Job, outcome: Outcome, config: &EngineConfig) -> DeliveryResult {
    match &outcome {
        Outcome::Delivered { status, provider_message_id } => {
            let mut r = result(row, DeliveryStatus::Delivered, Some(*status), None, None);
            r.provider_message_id = provider_message_id.clone();
            r
        }
        Outcome::Retry { status, reason, retry_after } => {
            if job.attempt >= config.max_attempts {
                return result(
                    row,
                    DeliveryStatus::Failed,
                    *status,
                    Some(format!("gave up after {} attempts: {reason}", job.attempt)),
                    None,
                );
            }
            let delay = retry_after.unwrap_or_else(|| backoff(job.attempt, config));
            let next = now_ms() + delay.as_millis() as Millis;
            if next >= job.expires_at {
                return result(
                    row,
                    DeliveryStatus::Expired,
                    *status,
                    Some(format!("ttl passes before the next attempt: {reason}")),
                    None,
                );
            }
            let mut r = result(row, DeliveryStatus::Queued, *status, Some(reason.clone()), None);
            r.next_attempt_at = next;
            r
        }
        Outcome::Gone { status, reason } | Outcome::ChannelError { status: Some(status), reason } => {
            result(row, DeliveryStatus::Failed, Some(*status), Some(reason.clone()), Some(outcome.clone()))
        }
        Outcome::ChannelError { status: None, reason } => {
            result(row, DeliveryStatus::Failed, None, Some(reason.clone()), Some(outcome.clone()))
        }
        Outcome::Failed { status, reason } => result(row, DeliveryStatus::Failed, *status, Some(reason.clone()), None),
    }
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, scaled by a random 50–100 %
/// so retries of a burst spread out instead of arriving together.
pub fn backoff(attempt: u32, config: &EngineConfig) -> Duration {
    let exp = config.retry_base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(config.retry_max);
    let jitter = u64::from_le_bytes(crate::keys::random_bytes::<8>()) % 501;
    capped.mul_f64(0.5 + jitter as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let config = EngineConfig {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..Default::default()
        };
        for attempt in 1..=8 {
            let d = backoff(attempt, &config);
            let full = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} vs {full:?}");
        }
        assert!(backoff(40, &config) <= Duration::from_secs(1));
    }
}
