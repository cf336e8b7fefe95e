//! Budgets for failed authentications, so that nobody can guess keys or make Herald burn CPU
//! on signature checks (RSA user tokens) with requests that fail anyway.
//!
//! Budgets apply per client address and per presented key prefix (the part of a key Herald looks
//! it up by), and they are counted at the edge, for every surface alike: an answer that means "bad
//! credentials" (401 everywhere; 403 on Bright Pattern, whose API answers bad credentials so)
//! spends one unit of both. Once either budget is spent, requests from that address or with that
//! key are refused with 429 *before* any handler runs, until the budget refills (GCRA, one unit
//! back every `60 s / limit`). In memory per node, like the other rate limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::limits::{Decision, Policy, RateLimits};

/// Most blocked keys remembered; beyond it expired entries are dropped first.
const MAX_BLOCKED: usize = 100_000;

/// The failed-authentication budgets of this node.
pub struct AuthGuard {
    policy: Policy,
    limits: RateLimits,
    /// Keys whose budget is spent, with when they may try again.
    blocked: Mutex<HashMap<String, Instant>>,
}

impl AuthGuard {
    /// Allows `per_minute` failed authentications per address and per key prefix.
    pub fn new(per_minute: u32) -> AuthGuard {
        AuthGuard { policy: Policy::per_minute(per_minute), limits: RateLimits::default(), blocked: Mutex::default() }
    }

    /// Seconds to wait when the address or any presented key is out of budget.
    pub fn blocked(&self, keys: &[String]) -> Option<u64> {
        let now = Instant::now();
        let blocked = self.blocked.lock().expect("auth guard lock");
        keys.iter()
            .filter_map(|k| blocked.get(k))
            .filter(|until| **until > now)
            .map(|until| until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64)
            .max()
    }

    /// Spends one unit of each key's budget; a key whose budget runs out is blocked until a
    /// unit comes back.
    pub fn failed(&self, keys: &[String]) {
        let refill = Duration::from_secs(u64::from(self.policy.window_secs)) / self.policy.limit.max(1);
        for key in keys {
            let wait = match self.limits.check(key, self.policy) {
                Decision::Allowed { remaining: 0, .. } => refill,
                Decision::Allowed { .. } => continue,
                Decision::Limited { retry_after_secs, .. } => Duration::from_secs(retry_after_secs),
            };
            {
                let until = Instant::now() + wait;
                let mut blocked = self.blocked.lock().expect("auth guard lock");
                if blocked.len() >= MAX_BLOCKED {
                    let now = Instant::now();
                    blocked.retain(|_, t| *t > now);
                }
                blocked.insert(key.clone(), until);
            }
        }
    }
}

/// What a request is counted under: its client address and the prefixes of the keys it presents
/// (bearer tokens, the compatible surfaces' key headers, Bright Pattern's `appId`).
pub fn keys(addr: Option<IpAddr>, headers: &HeaderMap) -> Vec<String> {
    let mut keys: Vec<String> = addr.map(|a| format!("addr:{a}")).into_iter().collect();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut presented: Vec<&str> = Vec::new();
    if let Some(auth) = text("authorization") {
        // `Bearer <token>`, Discord's bare token, or Bright Pattern's `… appId="pk_…", clientId=…`.
        let token = auth.rsplit(' ').next().unwrap_or(auth);
        presented.push(token);
        if let Some(app_id) = auth.split(['"', ',', ' ', '=']).find(|p| p.starts_with("pk_")) {
            presented.push(app_id);
        }
    }
    presented.extend(text("x-notiflows-api-key"));
    presented.extend(text("x-channel-api-key"));
    for token in presented {
        let token = token.trim();
        if !token.is_empty() {
            keys.push(format!("key:{}", herald_core::keys::lookup_prefix(token)));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_blocks_until_it_refills() {
        let guard = AuthGuard::new(3);
        let k = vec!["addr:1.2.3.4".to_string()];
        for _ in 0..2 {
            assert_eq!(guard.blocked(&k), None);
            guard.failed(&k);
        }
        assert_eq!(guard.blocked(&k), None, "two failures are within the budget");
        guard.failed(&k);
        assert!(guard.blocked(&k).is_some_and(|s| (1..=20).contains(&s)), "the third spends it");
        assert_eq!(guard.blocked(&["addr:5.6.7.8".to_string()]), None);
    }

    #[test]
    fn keys_name_the_address_and_every_presented_key() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "MOBILE-API-140-327-PLAIN appId=\"pk_abcdefghijklmnop\", clientId=\"c\"".parse().unwrap(),
        );
        h.insert("x-channel-api-key", "ck_0123456789abcdef".parse().unwrap());
        let k = keys(Some("127.0.0.1".parse().unwrap()), &h);
        assert!(k.contains(&"addr:127.0.0.1".to_string()));
        assert!(k.iter().any(|k| k.starts_with("key:pk_")));
        assert!(k.iter().any(|k| k.starts_with("key:ck_")));
    }
}
