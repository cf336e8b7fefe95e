//! Rate limits per credential (GCRA, via `governor`), on every surface.
//!
//! The key is always the authenticated credential — an API key id, a session, or a public key
//! together with the user its verified JWT names — never a header the client could vary to get
//! a fresh budget. Budgets live in memory per node: with N nodes behind a load balancer the
//! effective limit is up to N times the configured one (documented in the README).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// `limit` requests per `window_secs`, with bursts up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    pub limit: u32,
    pub window_secs: u32,
}

impl Policy {
    /// `limit` requests per minute.
    pub fn per_minute(limit: u32) -> Policy {
        Policy { limit: limit.max(1), window_secs: 60 }
    }

    fn quota(self) -> Quota {
        let limit = NonZeroU32::new(self.limit.max(1)).expect("non-zero");
        // GCRA: one request's worth of budget comes back every window/limit.
        let period = Duration::from_secs(u64::from(self.window_secs)) / limit.get();
        Quota::with_period(period.max(Duration::from_nanos(1))).expect("positive period").allow_burst(limit)
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed { policy: Policy, remaining: u32 },
    Limited { policy: Policy, retry_after_secs: u64 },
}

impl Decision {
    /// `RateLimit-Policy`, `RateLimit` (draft-ietf-httpapi-ratelimit-headers) and, when
    /// limited, `Retry-After`.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let (policy, remaining, reset) = match *self {
            Decision::Allowed { policy, remaining } => (policy, remaining, 0),
            Decision::Limited { policy, retry_after_secs } => {
                h.insert("retry-after", HeaderValue::from(retry_after_secs));
                (policy, 0, retry_after_secs)
            }
        };
        let value = |s: String| HeaderValue::from_str(&s).expect("ASCII header");
        h.insert("ratelimit-policy", value(format!("{};w={}", policy.limit, policy.window_secs)));
        h.insert("ratelimit", value(format!("limit={}, remaining={remaining}, reset={reset}", policy.limit)));
        h
    }
}

/// All limiters of this node, one per distinct policy, each keyed by credential.
#[derive(Default)]
pub struct RateLimits {
    limiters: Mutex<HashMap<Policy, Arc<Keyed>>>,
}

impl RateLimits {
    /// Counts one request of `credential` against `policy`.
    pub fn check(&self, credential: &str, policy: Policy) -> Decision {
        let limiter = {
            let mut all = self.limiters.lock().expect("rate limiter map");
            all.entry(policy)
                .or_insert_with(|| {
                    Arc::new(RateLimiter::keyed(policy.quota()).with_middleware::<StateInformationMiddleware>())
                })
                .clone()
        };
        match limiter.check_key(&credential.to_string()) {
            Ok(state) => Decision::Allowed { policy, remaining: state.remaining_burst_capacity() },
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision::Limited { policy, retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_passes_then_the_next_waits() {
        let limits = RateLimits::default();
        let policy = Policy::per_minute(200);
        for i in 0..200 {
            assert!(matches!(limits.check("ck_a", policy), Decision::Allowed { .. }), "request {i}");
        }
        let Decision::Limited { retry_after_secs, .. } = limits.check("ck_a", policy) else { panic!("201st allowed") };
        assert!((1..=1).contains(&retry_after_secs), "one request comes back every 300 ms: {retry_after_secs}");
        // Another credential has its own budget.
        assert!(matches!(limits.check("ck_b", policy), Decision::Allowed { remaining: 199, .. }));
        let h = limits.check("ck_a", policy).headers();
        assert_eq!(h["ratelimit-policy"], "200;w=60");
        assert!(h.contains_key("retry-after"));
    }
}
