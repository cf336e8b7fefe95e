//! The soak's traffic: a client that spreads requests over the nodes like a load balancer
//! (skipping nodes marked down, retrying 503 / 429 / connection errors on the next node after
//! `Retry-After`, with the same `Idempotency-Key`), logs every answer for the checks, and the
//! three operations of the mix: send to one user, subscribe, unsubscribe.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_providers::webpush::testing::UaKeyPair;
use reqwest::Method;
use serde_json::{Value, json};

use super::soak_sink::FaultSink;
use super::{BODY, R, TITLE};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// splitmix64: deterministic pseudo-random choices from an index.
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One HTTP answer Herald gave (or a transport error), as the checks need it.
#[derive(Clone, Debug)]
pub struct Answered {
    pub node: usize,
    pub start_ns: u64,
    pub end_ns: u64,
    /// None: connection error or client timeout.
    pub status: Option<u16>,
    pub retry_after: bool,
    /// `error.code` of an error body.
    pub code: Option<String>,
    /// The body (first 300 characters) or the transport error.
    pub what: String,
    pub body: Value,
}

#[derive(Default)]
pub struct HttpLog {
    /// Answers by (node, status or 0 for transport errors).
    pub by_status: BTreeMap<(usize, u16), u64>,
    /// Every non-2xx answer and transport error.
    pub trouble: Vec<Answered>,
    /// (end_ns, node, start_ns) of every 2xx answer.
    pub ok: Vec<(u64, usize, u64)>,
}

pub struct Client {
    http: reqwest::Client,
    pub base: Instant,
    pub urls: Vec<String>,
    pub up: Vec<AtomicBool>,
    rr: AtomicUsize,
    pub sk: Mutex<String>,
    pub log: Mutex<HttpLog>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub attempts: u32,
}

impl Client {
    pub fn new(base: Instant, urls: Vec<String>) -> R<Arc<Client>> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()?;
        let up = urls.iter().map(|_| AtomicBool::new(true)).collect();
        Ok(Arc::new(Client {
            http,
            base,
            urls,
            up,
            rr: AtomicUsize::new(0),
            sk: Mutex::default(),
            log: Mutex::default(),
        }))
    }

    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// The next node marked up, round-robin (node 0 if none is).
    fn pick(&self) -> usize {
        let n = self.urls.len();
        for _ in 0..n {
            let i = self.rr.fetch_add(1, Ordering::Relaxed) % n;
            if self.up[i].load(Ordering::Relaxed) {
                return i;
            }
        }
        0
    }

    /// One request to one node; every answer is logged.
    async fn once(
        &self,
        node: usize,
        method: &Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
        idem: Option<&str>,
    ) -> Answered {
        let start_ns = self.now_ns();
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.urls[node])).bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        let (status, retry_after, code, what, body) = match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let retry_after = res.headers().contains_key("retry-after");
                let bytes = res.bytes().await.unwrap_or_default();
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let code = v["error"]["code"].as_str().map(str::to_string);
                (Some(status), retry_after, code, String::from_utf8_lossy(&bytes).chars().take(300).collect(), v)
            }
            Err(e) => (None, false, None, format!("{e:?}").chars().take(300).collect(), Value::Null),
        };
        let a = Answered { node, start_ns, end_ns: self.now_ns(), status, retry_after, code, what, body };
        let mut log = lock(&self.log);
        *log.by_status.entry((node, status.unwrap_or(0))).or_insert(0) += 1;
        match status {
            Some(s) if (200..300).contains(&s) => log.ok.push((a.end_ns, node, a.start_ns)),
            _ => log.trouble.push(Answered { body: Value::Null, ..a.clone() }),
        }
        a
    }

    /// A request retried like a careful client behind a load balancer: 503 / 429 after
    /// `Retry-After` (1 s when absent), connection errors after 300 ms, each time on the next
    /// node, until `patience` runs out. Returns the last answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idem: Option<&str>,
        patience: Duration,
    ) -> Result<Reply, String> {
        let bearer = lock(&self.sk).clone();
        let give_up = Instant::now() + patience;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let a = self.once(self.pick(), &method, path, &bearer, body, idem).await;
            let wait = match a.status {
                Some(503 | 429) => Duration::from_secs(1),
                None => Duration::from_millis(300),
                Some(status) => return Ok(Reply { status, body: a.body, attempts }),
            };
            if Instant::now() + wait > give_up {
                return Err(format!("{method} {path}: gave up after {attempts} attempts: {:?} {}", a.status, a.what));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Operator call (admin token) to the first node up.
    pub async fn admin(&self, token: &str, path: &str, body: &Value) -> R<Value> {
        let node = self.pick();
        let res = self.http.post(format!("{}{path}", self.urls[node])).bearer_auth(token).json(body).send().await?;
        let status = res.status();
        let v: Value = res.json().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {v}").into());
        }
        Ok(v)
    }
}

/// One send as the driver saw it.
#[derive(Clone, Debug)]
pub struct SendRec {
    pub index: u32,
    /// 0: calibration (closed loop), 1: soak.
    pub phase: u8,
    pub accepted_ns: u64,
    pub id: Option<String>,
    pub deliveries: u64,
    pub attempts: u32,
    /// Status of the last answer, or the reason it gave up.
    pub outcome: Result<u16, String>,
}

#[derive(Clone, Debug)]
pub struct SubRec {
    pub user: u32,
    pub id: Option<i64>,
    pub deleted: bool,
}

/// Users, their subscriptions and what happened to every operation.
pub struct Traffic {
    pub client: Arc<Client>,
    pub sink: Arc<FaultSink>,
    pub users: u32,
    next_send: AtomicU64,
    pub subs: Mutex<Vec<SubRec>>,
    /// Subscriptions that may be deleted: their user has another one.
    spare: Mutex<VecDeque<u32>>,
    pub sends: Mutex<Vec<SendRec>>,
    /// Subscribe / unsubscribe outcomes: (ok, failed); failures are listed.
    pub subscribes: Mutex<(u64, Vec<String>)>,
    pub unsubscribes: Mutex<(u64, Vec<String>)>,
}

const PATIENCE: Duration = Duration::from_secs(120);

impl Traffic {
    pub fn new(client: Arc<Client>, sink: Arc<FaultSink>, users: u32) -> Arc<Traffic> {
        Arc::new(Traffic {
            client,
            sink,
            users,
            next_send: AtomicU64::new(0),
            subs: Mutex::default(),
            spare: Mutex::default(),
            sends: Mutex::default(),
            subscribes: Mutex::default(),
            unsubscribes: Mutex::default(),
        })
    }

    /// Registers subscription number `sub` (already in `subs`) for its user; returns its id.
    async fn register(&self, sub: u32) -> Result<i64, String> {
        let user = lock(&self.subs)[sub as usize].user;
        let ua = UaKeyPair::generate();
        let body = json!({"settings": {"endpoint": self.sink.endpoint(sub), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()}});
        let r = self
            .client
            .call(Method::POST, &format!("/v1/users/u{user}/subscriptions"), Some(&body), None, PATIENCE)
            .await?;
        match (r.status, r.body["id"].as_i64()) {
            (200 | 201, Some(id)) => {
                lock(&self.subs)[sub as usize].id = Some(id);
                Ok(id)
            }
            (s, _) => Err(format!("registering subscription {sub}: {s} {}", r.body)),
        }
    }

    fn new_sub(&self, user: u32) -> u32 {
        let mut subs = lock(&self.subs);
        subs.push(SubRec { user, id: None, deleted: false });
        (subs.len() - 1) as u32
    }

    /// Every user gets one subscription; every `extra_every`-th user a second (deletable) one.
    pub async fn populate(self: &Arc<Self>, extra_every: u32, concurrency: usize) -> R<()> {
        let mut order: Vec<u32> = (0..self.users).map(|u| self.new_sub(u)).collect();
        for u in (0..self.users).step_by(extra_every.max(1) as usize) {
            let s = self.new_sub(u);
            lock(&self.spare).push_back(s);
            order.push(s);
        }
        let order = Arc::new(order);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (t, order, next) = (self.clone(), order.clone(), next.clone());
            tasks.spawn(async move {
                while let Some(&s) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    t.register(s).await?;
                }
                Ok::<_, String>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }

    /// Sends to one user; the send's index is its marker (`collapse_key` and idempotency key).
    pub async fn send(&self, phase: u8, user_hint: u64) {
        let index = self.next_send.fetch_add(1, Ordering::Relaxed) as u32;
        let user = (mix(user_hint) % u64::from(self.users)) as u32;
        let body = json!({
            "to": {"user": format!("u{user}")}, "title": TITLE, "body": BODY,
            "collapse_key": format!("s{index}"), "data": {"soak": index},
        });
        let key = format!("soak-{index}");
        let r = self.client.call(Method::POST, "/v1/notifications", Some(&body), Some(&key), PATIENCE).await;
        let accepted_ns = self.client.now_ns();
        let rec = match r {
            Ok(r) => SendRec {
                index,
                phase,
                accepted_ns,
                id: (r.status == 202).then(|| r.body["id"].as_str().unwrap_or_default().to_string()),
                deliveries: r.body["deliveries"].as_u64().unwrap_or(0),
                attempts: r.attempts,
                outcome: Ok(r.status),
            },
            Err(e) => SendRec { index, phase, accepted_ns, id: None, deliveries: 0, attempts: 0, outcome: Err(e) },
        };
        lock(&self.sends).push(rec);
    }

    /// A new subscription for a random user.
    pub async fn subscribe(&self, hint: u64) {
        let user = (mix(hint ^ 0x5eed) % u64::from(self.users)) as u32;
        let sub = self.new_sub(user);
        match self.register(sub).await {
            Ok(_) => {
                lock(&self.spare).push_back(sub);
                lock(&self.subscribes).0 += 1;
            }
            Err(e) => lock(&self.subscribes).1.push(e),
        }
    }

    /// Deletes the oldest spare subscription (its user keeps another one).
    pub async fn unsubscribe(&self) {
        let Some(sub) = lock(&self.spare).pop_front() else { return };
        let Some(id) = lock(&self.subs)[sub as usize].id else { return };
        let r = self.client.call(Method::DELETE, &format!("/v1/subscriptions/{id}"), None, None, PATIENCE).await;
        match r {
            // 404: a retry after a deletion whose answer was lost.
            Ok(r) if r.status == 204 || (r.status == 404 && r.attempts > 1) => {
                lock(&self.subs)[sub as usize].deleted = true;
                lock(&self.unsubscribes).0 += 1;
            }
            Ok(r) => lock(&self.unsubscribes).1.push(format!("DELETE subscription {id}: {} {}", r.status, r.body)),
            Err(e) => lock(&self.unsubscribes).1.push(e),
        }
    }

    /// One operation of the 98 / 1 / 1 mix, chosen by its number.
    pub async fn op(&self, n: u64) {
        match mix(n) % 100 {
            0 => self.subscribe(n).await,
            1 => self.unsubscribe().await,
            _ => self.send(1, n).await,
        }
    }

    /// Closed loop: `concurrency` sends in flight for `secs`; returns sends accepted per second
    /// and the deliveries those sends made.
    pub async fn closed_loop(self: &Arc<Self>, concurrency: usize, secs: f64) -> (f64, u64) {
        let before = lock(&self.sends).len();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..concurrency {
            let t = self.clone();
            tasks.spawn(async move {
                let mut k = c as u64;
                while Instant::now() < end {
                    t.send(0, k.wrapping_mul(7919)).await;
                    k += concurrency as u64;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let sends = lock(&self.sends);
        let done = &sends[before..];
        let accepted = done.iter().filter(|s| s.outcome == Ok(202)).count();
        (accepted as f64 / t0.elapsed().as_secs_f64(), done.iter().map(|s| s.deliveries).sum())
    }
}
