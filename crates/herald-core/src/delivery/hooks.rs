//! The webhook worker: drains the hook outbox the way the engine drains deliveries — leased
//! batches, sends without an open transaction, results written back together, jittered
//! exponential backoff. An endpoint failing for five days is disabled, with an event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::clock::{Millis, now_ms};
use crate::store::Store;
use crate::webhooks::{ClaimedHook, HookResult, HookSender};

/// Tuning of the hook worker.
#[derive(Debug, Clone)]
pub struct HookConfig {
    pub batch: u32,
    pub lease: Duration,
    /// First retry delay, doubling per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// After this many attempts a hook is `failed` (about 5 days with the defaults).
    pub max_attempts: i64,
    pub poll: Duration,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            batch: 64,
            lease: Duration::from_secs(60),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(10 * 3600),
            max_attempts: 20,
            poll: Duration::from_secs(1),
        }
    }
}

/// Runs until shutdown.
pub async fn run(
    store: Arc<dyn Store>,
    sender: Arc<dyn HookSender>,
    config: HookConfig,
    wake: Arc<Notify>,
    node: Arc<crate::cluster::Node>,
    mut shutdown: watch::Receiver<bool>,
) {
    let owner = node.owner('h');
    let seq = AtomicU64::new(0);
    while !*shutdown.borrow() {
        if !node.alive() {
            // Declared dead by the others: claim nothing until registered again.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let lease = format!("{owner}:{}", seq.fetch_add(1, Ordering::Relaxed));
        let claimed = match store.claim_hooks(&lease, now_ms(), config.lease.as_millis() as i64, config.batch).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "claiming webhooks failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(config.poll) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let mut sends = JoinSet::new();
        for hook in claimed {
            let sender = sender.clone();
            sends.spawn(async move {
                let answer = sender.send(&hook).await;
                (hook, answer)
            });
        }
        let mut results = Vec::new();
        while let Some(Ok((hook, answer))) = sends.join_next().await {
            results.push(settle(&hook, answer, &config));
        }
        match store.record_hooks(&results, now_ms()).await {
            Ok(disabled) if !disabled.is_empty() => {
                // Their `webhook.disabled` events were queued with the change itself.
                for w in &disabled {
                    tracing::warn!(webhook = %w.id, "webhook disabled after failing for 5 days");
                }
                wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "recording webhook results failed; leases will expire and retry"),
        }
    }
}

fn settle(hook: &ClaimedHook, answer: Result<u16, (Option<u16>, String)>, config: &HookConfig) -> HookResult {
    let base = HookResult {
        lease: hook.lease.clone(),
        id: hook.id,
        webhook_id: hook.webhook_id.clone(),
        delivered: false,
        next_attempt_at: None,
        status: None,
        error: None,
    };
    match answer {
        Ok(status) => HookResult { delivered: true, status: Some(status), ..base },
        Err((status, error)) => {
            let retry = !hook.url.is_empty() && hook.attempts < config.max_attempts;
            let next_attempt_at = retry.then(|| now_ms() + delay(hook.attempts, config));
            HookResult { status, error: Some(error), next_attempt_at, ..base }
        }
    }
}

fn delay(attempts: i64, config: &HookConfig) -> Millis {
    let engine = super::engine::EngineConfig {
        retry_base: config.retry_base,
        retry_max: config.retry_max,
        ..Default::default()
    };
    super::engine::backoff(attempts.clamp(1, 30) as u32, &engine).as_millis() as Millis
}
