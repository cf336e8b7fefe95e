//! Load driver for the `scripts/bench-*` scripts (see BENCHMARKS.md). It never starts Herald
//! itself: the scripts start a release `herald serve` on loopback and pass its URL, admin token
//! and pid here. Subcommands:
//!
//! - `crypto`: raw RFC 8291 encryption cost (`encrypt()` in a loop, 1 thread and all cores),
//!   with a breakdown (key generation, ECDH, key parsing);
//! - `webpush`: N browser subscriptions with real P-256 keys on a local HTTP/1.1 sink, one
//!   channel broadcast, time from 202 to the last delivery;
//! - `native`: the same against the in-process HTTP/2 mock APNs and mock FCM (recording off);
//! - `latency`: calibrates the broadcast rate and the single-user send capacity, then sends to
//!   single users open-loop at fractions of them and matches each sink arrival (by the send's
//!   `Topic` marker, its `collapse_key`) with the 202 of its send;
//! - `rss-exercise`: list / register / send traffic against the bench-rss database;
//! - `sqlx-roundtrip`: the cost of one statement through sqlx's SQLite driver;
//! - `threads`: per-thread CPU of a process over a window;
//! - `sink`: just the counting sink, for scripts that need an endpoint (bench-rss);
//! - `free-port`: prints a free loopback port.
//!
//! Every loop is bounded by a count and a deadline; only 127.0.0.1 is ever contacted.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use herald_core::delivery::{Content, Options};
use herald_providers::mock::{MockApns, MockApnsConfig, MockFcm, MockFcmConfig, fixtures};
use herald_providers::webpush::crypto::{UaKeys, encrypt};
use herald_providers::webpush::provider::payload;
use herald_providers::webpush::testing::UaKeyPair;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Linux reports process CPU time in USER_HZ ticks, which is 100 on every mainstream ABI.
const CLK_TCK: f64 = 100.0;

const TITLE: &str = "Herald benchmark";
const BODY: &str = "Your order #12345 has shipped and will arrive on Thursday between 9:00 and 12:00.";

#[derive(Parser)]
#[command(about = "Herald load driver for scripts/bench-*")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Server {
    /// Herald base URL, e.g. http://127.0.0.1:18080
    #[arg(long)]
    url: String,
    /// The server's HERALD_ADMIN_TOKEN.
    #[arg(long)]
    admin_token: String,
    /// Herald's pid, for CPU time and RSS from /proc.
    #[arg(long)]
    pid: u32,
    /// Markdown results are appended here.
    #[arg(long)]
    report: Option<String>,
    /// Concurrent registration requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Use this account's secret key instead of creating a new account.
    #[arg(long)]
    sk: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Raw encryption cost.
    Crypto {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
        #[arg(long)]
        report: Option<String>,
    },
    /// Web Push broadcast throughput to a local sink.
    Webpush {
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 20_000)]
        n: usize,
        /// Give up waiting for deliveries after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Broadcasts to the same subscriptions, one after the other, each after a quiet wait;
        /// the fastest is reported, all are listed (the deliveries table grows per round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// APNs and FCM broadcast throughput to the in-process HTTP/2 mocks.
    Native {
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 30_000)]
        n: usize,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Broadcasts per provider; the fastest is reported, all are listed.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Send-accepted → first provider request latency at a fraction of the max Web Push rate.
    Latency {
        #[command(flatten)]
        server: Server,
        /// Subscriptions for the calibration broadcast (skipped when --rate is given).
        #[arg(long, default_value_t = 20_000)]
        calibrate_n: usize,
        /// Target rate in sends/s; default: --fraction × the calibrated broadcast rate.
        #[arg(long)]
        rate: Option<f64>,
        /// Fractions of the calibrated rate to run at, comma-separated.
        #[arg(long, default_value = "0.7")]
        fractions: String,
        /// Seconds of sending per fraction.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Sends outstanding at most (each needs an HTTP/1.1 connection).
        #[arg(long, default_value_t = 256)]
        max_outstanding: usize,
        /// Users (one subscription each) of the account the sends go to, round-robin.
        #[arg(long, default_value_t = 1000)]
        users: usize,
    },
    /// Exercises list/register/send endpoints on a database filled by scripts/bench-rss, with a
    /// sink on --sink-port (the port the bulk-inserted endpoints name).
    RssExercise {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        sink_port: u16,
        /// Bulk-inserted users are r1..=r<users>.
        #[arg(long)]
        users: usize,
        /// Topic the first subscriptions were put in.
        #[arg(long, default_value = "news")]
        topic: String,
        /// New subscriptions to register.
        #[arg(long, default_value_t = 500)]
        register: usize,
    },
    /// A counting HTTP/1.1 sink answering 201, for --secs seconds.
    Sink {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value_t = 3600)]
        secs: u64,
    },
    /// Cost of one statement round trip through sqlx's SQLite driver (the store's access path),
    /// on a temp database opened the way herald-store opens it (WAL, synchronous=NORMAL).
    SqlxRoundtrip {
        /// Directory for the temporary database.
        #[arg(long)]
        dir: String,
        #[arg(long)]
        report: Option<String>,
    },
    /// Per-thread CPU of a process over a window (for the wrk-driven upsert benchmark).
    Threads {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        secs: f64,
    },
    /// Prints a free loopback TCP port.
    FreePort,
}

fn main() -> R<()> {
    let cli = Cli::parse();
    if let Cmd::Crypto { secs, report } = &cli.cmd {
        let c = crypto_bench(*secs);
        let md = c.markdown();
        println!("{md}");
        append(report.as_deref(), &md)?;
        println!(
            "SUMMARY crypto: encrypt {:.1} µs/msg single-thread, {:.0} msg/s on {} threads",
            c.encrypt_us, c.multi_rate, c.cores
        );
        return Ok(());
    }
    if let Cmd::Threads { pid, secs } = cli.cmd {
        let (t0, a) = (Instant::now(), thread_cpu(pid));
        std::thread::sleep(Duration::from_secs_f64(secs));
        println!("{}", thread_report(&a, &thread_cpu(pid), t0.elapsed().as_secs_f64()));
        return Ok(());
    }
    if matches!(cli.cmd, Cmd::FreePort) {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        println!("{}", l.local_addr()?.port());
        return Ok(());
    }
    // One worker thread: the harness (sink, mocks, client) must leave the cores to Herald.
    // Its own CPU use is measured and reported next to Herald's.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Webpush { server, n, timeout, rounds } => webpush(server, n, timeout, rounds).await,
            Cmd::Native { server, n, timeout, rounds } => native(server, n, timeout, rounds).await,
            Cmd::Latency { server, calibrate_n, rate, fractions, secs, max_outstanding, users } => {
                latency(server, calibrate_n, rate, &fractions, secs, max_outstanding, users).await
            }
            Cmd::Sink { port, secs } => sink_only(port, secs).await,
            Cmd::SqlxRoundtrip { dir, report } => sqlx_roundtrip(&dir, report.as_deref()).await,
            Cmd::RssExercise { server, sink_port, users, topic, register } => {
                rss_exercise(server, sink_port, users, &topic, register).await
            }
            Cmd::Crypto { .. } | Cmd::FreePort | Cmd::Threads { .. } => unreachable!(),
        }
    })
}

fn append(report: Option<&str>, text: &str) -> R<()> {
    if let Some(path) = report {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{text}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Raw crypto cost

struct CryptoResult {
    cores: usize,
    plaintext_len: usize,
    encrypt_us: f64,
    multi_rate: f64,
    keygen_us: f64,
    keygen_ecdh_us: f64,
    parse_keys_us: f64,
    provider_prep_us: f64,
}

impl CryptoResult {
    fn markdown(&self) -> String {
        format!(
            "| raw `encrypt()` (keygen + ECDH + HKDF + AES-GCM, {len}-byte payload), 1 thread | {e:.1} µs/msg = {r1:.0} msg/s |\n\
             | raw `encrypt()` on {c} threads at once | {m:.0} msg/s ({pc:.1} µs/msg per core) |\n\
             | ideal cores / raw cost | {ideal:.0} msg/s |\n\
             | breakdown: P-256 key generation + public key | {k:.1} µs |\n\
             | breakdown: key generation + ECDH (`agree_ephemeral`) | {ke:.1} µs |\n\
             | breakdown: `UaKeys::from_base64` (decode + on-curve check, done per send) | {p:.1} µs |\n\
             | provider CPU without I/O: keys parse + payload JSON + `encrypt()` | {pp:.1} µs/msg |",
            len = self.plaintext_len,
            e = self.encrypt_us,
            r1 = 1e6 / self.encrypt_us,
            c = self.cores,
            m = self.multi_rate,
            pc = self.cores as f64 * 1e6 / self.multi_rate,
            ideal = self.cores as f64 * 1e6 / self.encrypt_us,
            k = self.keygen_us,
            ke = self.keygen_ecdh_us,
            p = self.parse_keys_us,
            pp = self.provider_prep_us,
        )
    }
}

fn bench_content() -> (Content, Options) {
    let content = Content { title: Some(TITLE.into()), body: Some(BODY.into()), ..Default::default() };
    (content, Options { ttl: 2_419_200, ..Default::default() })
}

/// Runs `f` repeatedly for `secs`, returning µs per call.
fn time_loop(secs: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn crypto_bench(secs: f64) -> CryptoResult {
    use aws_lc_rs::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
    use aws_lc_rs::rand::SystemRandom;

    let ua = UaKeyPair::generate();
    let keys = ua.ua_keys();
    let (content, options) = bench_content();
    let plain = payload(&content, &options);
    // Sanity: what we time really is decryptable Web Push.
    let body = encrypt(&keys, &plain).expect("encrypt");
    assert_eq!(ua.decrypt(&body).expect("decrypt"), plain);

    let encrypt_us = time_loop(secs, || {
        std::hint::black_box(encrypt(&keys, &plain).unwrap());
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < secs {
                    for _ in 0..50 {
                        std::hint::black_box(encrypt(&keys, &plain).unwrap());
                    }
                    n += 50;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    let multi_rate = total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();

    let rng = SystemRandom::new();
    let keygen_us = time_loop(secs / 2.0, || {
        let k = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        std::hint::black_box(k.compute_public_key().unwrap());
    });
    let keygen_ecdh_us = time_loop(secs / 2.0, || {
        let k = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let peer = UnparsedPublicKey::new(&ECDH_P256, &keys.p256dh);
        agree_ephemeral(k, peer, (), |s| Ok::<_, ()>(std::hint::black_box(s[0]))).unwrap();
    });
    let (p, a) = (ua.p256dh_b64(), ua.auth_b64());
    let parse_keys_us = time_loop(secs / 2.0, || {
        std::hint::black_box(UaKeys::from_base64(&p, &a).unwrap());
    });
    let provider_prep_us = time_loop(secs / 2.0, || {
        let k = UaKeys::from_base64(&p, &a).unwrap();
        std::hint::black_box(encrypt(&k, &payload(&content, &options)).unwrap());
    });
    CryptoResult {
        cores,
        plaintext_len: plain.len(),
        encrypt_us,
        multi_rate,
        keygen_us,
        keygen_ecdh_us,
        parse_keys_us,
        provider_prep_us,
    }
}

// ---------------------------------------------------------------------------------------------
// The sink: a minimal HTTP/1.1 server (keep-alive, Content-Length bodies) answering 201 at once.

struct Sink {
    addr: SocketAddr,
    base: Instant,
    count: AtomicU64,
    /// Arrival (ns since `base`, +1 so 0 means "not yet") of the request marked `s<i>`, first
    /// arrival only.
    arrivals: Vec<AtomicU64>,
    duplicates: AtomicU64,
}

impl Sink {
    async fn start(latency_slots: usize) -> R<Arc<Sink>> {
        Self::start_on(0, latency_slots).await
    }

    async fn start_on(port: u16, latency_slots: usize) -> R<Arc<Sink>> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let sink = Arc::new(Sink {
            addr: listener.local_addr()?,
            base: Instant::now(),
            count: AtomicU64::new(0),
            arrivals: (0..latency_slots).map(|_| AtomicU64::new(0)).collect(),
            duplicates: AtomicU64::new(0),
        });
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(sink_conn(stream, s.clone()));
            }
        });
        Ok(sink)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Counts a request; a `Topic: s<i>` marker (the send's `collapse_key`) stamps slot `i`.
    fn record(&self, _path: &[u8], marker: Option<usize>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = marker.and_then(|i| self.arrivals.get(i)) {
            let ns = self.base.elapsed().as_nanos() as u64 + 1;
            if slot.compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn content_length(head: &[u8]) -> usize {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            return std::str::from_utf8(&line[15..]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        }
    }
    0
}

/// `s<i>` from a `Topic` header.
fn topic_marker(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 6 && line[..6].eq_ignore_ascii_case(b"topic:") {
            let v = std::str::from_utf8(&line[6..]).ok()?.trim();
            v.strip_prefix('s')?.parse().ok()
        } else {
            None
        }
    })
}

fn request_path(head: &[u8]) -> &[u8] {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    line.split(|&b| b == b' ').nth(1).unwrap_or_default()
}

async fn sink_conn(mut stream: TcpStream, sink: Arc<Sink>) {
    const RESPONSE: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    loop {
        let mut consumed = 0;
        while let Some(head_end) = find_head_end(&buf[consumed..]) {
            let head = &buf[consumed..consumed + head_end];
            let total = head_end + 4 + content_length(head);
            if buf.len() - consumed < total {
                break;
            }
            sink.record(request_path(head), topic_marker(head));
            out.extend_from_slice(RESPONSE);
            consumed += total;
        }
        if consumed > 0 {
            buf.drain(..consumed);
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        buf.reserve(8192);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn sink_only(port: u16, secs: u64) -> R<()> {
    let sink = Sink::start_on(port, 0).await?;
    println!("{}", sink.addr.port());
    // Runs until killed (scripts stop it in their cleanup) or `secs` pass.
    tokio::time::sleep(Duration::from_secs(secs)).await;
    eprintln!("sink: {} requests", sink.count.load(Ordering::Relaxed));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Herald's API

struct Api {
    client: reqwest::Client,
    base: String,
    sk: String,
}

impl Api {
    async fn connect(server: &Server) -> R<Arc<Api>> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()?;
        if let Some(sk) = &server.sk {
            return Ok(Arc::new(Api { client, base: server.url.clone(), sk: sk.clone() }));
        }
        let res = client
            .post(format!("{}/admin/v1/accounts", server.url))
            .bearer_auth(&server.admin_token)
            .json(&json!({"name": "bench"}))
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            return Err(format!("creating the account: {status} {body}").into());
        }
        let sk = body["secret_key"].as_str().ok_or("no secret_key")?.to_string();
        Ok(Arc::new(Api { client, base: server.url.clone(), sk }))
    }

    async fn post(&self, path: &str, body: &Value) -> R<(u16, Value)> {
        let res = self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.sk).json(body).send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str) -> R<(u16, Value)> {
        let res = self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.sk).send().await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn channel(&self, kind: &str, config: Value) -> R<String> {
        let (status, c) = self
            .post("/v1/channels", &json!({"name": format!("bench-{kind}"), "type": kind, "config": config}))
            .await?;
        if status != 201 {
            return Err(format!("creating a {kind} channel: {status} {c}").into());
        }
        Ok(c["id"].as_str().ok_or("no channel id")?.to_string())
    }

    /// Registers `bodies[i]` for user `users[i]` with `concurrency` requests in flight.
    async fn register_all(self: &Arc<Self>, regs: Vec<(String, Value)>, concurrency: usize) -> R<Duration> {
        let regs = Arc::new(regs);
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (api, regs, next) = (self.clone(), regs.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((user, body)) = regs.get(i) else { return Ok::<_, String>(()) };
                    let (status, v) = api
                        .post(&format!("/v1/users/{user}/subscriptions"), body)
                        .await
                        .map_err(|e| format!("registering {user}: {e}"))?;
                    if status != 201 && status != 200 {
                        return Err(format!("registering {user}: {status} {v}"));
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(start.elapsed())
    }

    async fn counts(&self, id: &str) -> R<Value> {
        let (status, n) = self.get(&format!("/v1/notifications/{id}?limit=1")).await?;
        if status != 200 {
            return Err(format!("reading notification {id}: {status} {n}").into());
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// /proc accounting

fn proc_cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / CLK_TCK
}

fn proc_status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Busy CPU seconds of the whole machine (every core, every process) from /proc/stat.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum::<f64>();
    busy / CLK_TCK
}

#[derive(Clone, Copy)]
struct Cpu {
    herald: f64,
    me: f64,
    machine: f64,
    at: Instant,
}

fn cpu(pid: u32) -> Cpu {
    Cpu {
        herald: proc_cpu_secs(&pid.to_string()),
        me: proc_cpu_secs("self"),
        machine: machine_busy_secs(),
        at: Instant::now(),
    }
}

impl Cpu {
    /// CPU-seconds that neither Herald nor this harness used since `earlier`: other processes
    /// on this shared machine.
    fn others_since(&self, earlier: &Cpu) -> f64 {
        ((self.machine - earlier.machine) - (self.herald - earlier.herald) - (self.me - earlier.me)).max(0.0)
    }
}

/// CPU seconds of each thread of `pid`: (tid, name, seconds).
fn thread_cpu(pid: u32) -> Vec<(u32, String, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out: Vec<(u32, String, f64)> = tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?.trim().to_string();
            Some((tid, name, proc_cpu_secs(&format!("{pid}/task/{tid}"))))
        })
        .collect();
    out.sort_by_key(|t| t.0);
    out
}

/// Per-thread utilisation (% of one core) between two snapshots, busiest first. Same-named
/// threads are numbered in thread-id order (sqlx runs one worker thread per SQLite connection).
fn thread_report(before: &[(u32, String, f64)], after: &[(u32, String, f64)], wall: f64) -> String {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut rows: Vec<(String, f64)> = after
        .iter()
        .map(|(tid, name, secs)| {
            let k = seen.entry(name.clone()).or_insert(0);
            *k += 1;
            let prev = before.iter().find(|b| b.0 == *tid).map_or(0.0, |b| b.2);
            let name = if name.starts_with("sqlx-sqlite") { "sqlx-sqlite-worker".to_string() } else { name.clone() };
            (format!("{name} #{k}"), (secs - prev) / wall * 100.0)
        })
        .filter(|(_, pct)| *pct >= 1.0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows.iter().take(6).map(|(n, p)| format!("{n} {p:.0} %")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// Broadcast measurement

struct Broadcast {
    n: usize,
    accept_ms: f64,
    /// 202 → the provider side saw the n-th request.
    provider_secs: Option<f64>,
    /// 202 → the API reported every delivery final.
    confirmed_secs: Option<f64>,
    delivered: u64,
    failed: u64,
    other: Value,
    peak_1s: f64,
    herald_cpu: f64,
    harness_cpu: f64,
    others_cpu: f64,
    wall: f64,
    herald_hwm_kb: u64,
    threads: String,
}

impl Broadcast {
    fn rate(&self) -> Option<f64> {
        self.provider_secs.map(|s| self.n as f64 / s)
    }
    fn confirmed_rate(&self) -> Option<f64> {
        self.confirmed_secs.map(|s| self.n as f64 / s)
    }
    fn describe(&self) -> String {
        let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));
        format!(
            "{n} deliveries: {r}/s at the provider (202 → last request {ps}), {cr}/s confirmed by the API \
             (202 → all final {cs}); peak 1-s window {peak:.0}/s; delivered {d}, failed {fl}; 202 in {a:.1} ms; \
             CPU during the run: herald {hc:.2} s ({hcu:.0} µs/delivery, {hcp:.0} % of 2 cores), harness {mc:.2} s, \
             other processes {oc:.2} s; herald peak RSS {hwm} MB; busiest herald threads (% of one core): {th}",
            n = self.n,
            r = f(self.rate()),
            ps = self.provider_secs.map_or("n/a".into(), |s| format!("{s:.2} s")),
            cr = f(self.confirmed_rate()),
            cs = self.confirmed_secs.map_or("n/a".into(), |s| format!("{s:.2} s")),
            peak = self.peak_1s,
            d = self.delivered,
            fl = self.failed,
            a = self.accept_ms,
            hc = self.herald_cpu,
            hcu = self.herald_cpu * 1e6 / self.n as f64,
            hcp = self.herald_cpu / self.wall / 2.0 * 100.0,
            mc = self.harness_cpu,
            oc = self.others_cpu,
            hwm = self.herald_hwm_kb / 1024,
            th = self.threads,
        )
    }
}

/// Sends one broadcast to `channel_id` and waits until `provider_count` reaches `n` and the API
/// reports every delivery final (or `timeout`).
async fn broadcast(
    api: &Api,
    pid: u32,
    channel_id: &str,
    n: usize,
    timeout: Duration,
    provider_count: impl Fn() -> u64,
) -> R<Broadcast> {
    let before = provider_count();
    let threads0 = thread_cpu(pid);
    let cpu0 = cpu(pid);
    let t0 = Instant::now();
    let (status, sent) =
        api.post("/v1/notifications", &json!({"to": {"channel_id": channel_id}, "title": TITLE, "body": BODY})).await?;
    let accepted = Instant::now();
    if status != 202 {
        return Err(format!("broadcast: {status} {sent}").into());
    }
    let id = sent["id"].as_str().ok_or("no notification id")?.to_string();
    let deadline = accepted + timeout;
    let mut provider_done: Option<Instant> = None;
    let mut confirmed: Option<Instant> = None;
    let mut last_counts = Value::Null;
    let mut samples: Vec<(Instant, u64)> = vec![(accepted, 0)];
    let mut next_poll = accepted;
    while Instant::now() < deadline && (provider_done.is_none() || confirmed.is_none()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = Instant::now();
        let c = provider_count() - before;
        samples.push((now, c));
        if provider_done.is_none() && c >= n as u64 {
            provider_done = Some(now);
        }
        // The API poll costs Herald a COUNT over the notification's deliveries: 4 per second.
        if confirmed.is_none() && now >= next_poll {
            next_poll = now + Duration::from_millis(250);
            let v = api.counts(&id).await?;
            let counts = &v["counts"];
            let fanout_done = v["fanout"]["status"] == "done";
            let pending = counts["queued"].as_u64().unwrap_or(0) + counts["sending"].as_u64().unwrap_or(0);
            if fanout_done && pending == 0 && counts["total"].as_u64().unwrap_or(0) >= n as u64 {
                confirmed = Some(Instant::now());
                // Nothing more will reach the provider if some deliveries failed.
                if provider_done.is_none() {
                    break;
                }
            }
            last_counts = counts.clone();
        }
    }
    let cpu1 = cpu(pid);
    let threads1 = thread_cpu(pid);
    let v = api.counts(&id).await?;
    let counts = v["counts"].clone();
    if confirmed.is_none() {
        eprintln!("warning: not all deliveries final after {timeout:?}: {counts} (last {last_counts})");
    }
    // Peak 1-second window from the 5 ms samples.
    let mut peak = 0.0f64;
    let mut j = 0;
    for i in 0..samples.len() {
        while samples[i].0.duration_since(samples[j].0) > Duration::from_secs(1) {
            j += 1;
        }
        let span = samples[i].0.duration_since(samples[j].0).as_secs_f64();
        if span >= 0.9 {
            peak = peak.max((samples[i].1 - samples[j].1) as f64 / span);
        }
    }
    let mut other = counts.clone();
    if let Some(o) = other.as_object_mut() {
        o.retain(|k, v| !matches!(k.as_str(), "delivered" | "failed" | "total") && v.as_u64() != Some(0));
    }
    Ok(Broadcast {
        n,
        accept_ms: accepted.duration_since(t0).as_secs_f64() * 1e3,
        provider_secs: provider_done.map(|t| t.duration_since(accepted).as_secs_f64()),
        confirmed_secs: confirmed.map(|t| t.duration_since(accepted).as_secs_f64()),
        delivered: counts["delivered"].as_u64().unwrap_or(0),
        failed: counts["failed"].as_u64().unwrap_or(0),
        other,
        peak_1s: peak,
        herald_cpu: cpu1.herald - cpu0.herald,
        harness_cpu: cpu1.me - cpu0.me,
        others_cpu: cpu1.others_since(&cpu0),
        wall: cpu1.at.duration_since(cpu0.at).as_secs_f64(),
        herald_hwm_kb: proc_status_kb(&pid.to_string(), "VmHWM:"),
        threads: thread_report(&threads0, &threads1, cpu1.at.duration_since(cpu0.at).as_secs_f64()),
    })
}

fn web_push_regs(sink: &Sink, prefix: &str, user_prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, Value)> {
    range
        .map(|i| {
            let ua = UaKeyPair::generate();
            let settings = json!({"endpoint": sink.url(&format!("/{prefix}/{i}")), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
            (format!("{user_prefix}{i}"), json!({ "settings": settings }))
        })
        .collect()
}

/// Waits (at most `max`) until other processes use less than 0.3 cores over one second, so a
/// measurement on this shared machine starts quiet. Returns what they used at the end.
async fn wait_quiet(pid: u32, max: Duration) -> f64 {
    let deadline = Instant::now() + max;
    loop {
        let a = cpu(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let others = cpu(pid).others_since(&a) / a.at.elapsed().as_secs_f64();
        if others < 0.3 || Instant::now() > deadline {
            return others;
        }
    }
}

/// `rounds` broadcasts to `channel_id`, each after a quiet wait; the fastest is the headline
/// (the machine is shared: the others show what interference and the growing deliveries table
/// did), all are listed.
async fn broadcast_rounds(
    api: &Api,
    pid: u32,
    channel_id: &str,
    n: usize,
    timeout: Duration,
    rounds: usize,
    count: impl Fn() -> u64,
) -> R<(Broadcast, Vec<String>)> {
    let mut best: Option<Broadcast> = None;
    let mut listing = Vec::new();
    for round in 1..=rounds.max(1) {
        wait_quiet(pid, Duration::from_secs(120)).await;
        let base = count();
        let b = broadcast(api, pid, channel_id, n, timeout, || count() - base).await?;
        println!("  round {round}: {}", b.describe());
        if b.other.as_object().is_some_and(|o| !o.is_empty()) {
            println!("  other statuses: {}", b.other);
        }
        listing.push(format!(
            "round {round}: {}/s, {:.0} µs herald CPU/delivery, other processes {:.2} cores",
            b.rate().map_or("n/a".into(), |r| format!("{r:.0}")),
            b.herald_cpu * 1e6 / n as f64,
            b.others_cpu / b.wall
        ));
        if best.as_ref().is_none_or(|x| b.rate().unwrap_or(0.0) > x.rate().unwrap_or(0.0)) {
            best = Some(b);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok((best.expect("at least one round"), listing))
}

async fn webpush(server: Server, n: usize, timeout: u64, rounds: usize) -> R<()> {
    let sink = Sink::start(0).await?;
    let api = Api::connect(&server).await?;
    let channel = api.channel("web_push", json!({"subject": "mailto:bench@example.com"})).await?;
    let regs = web_push_regs(&sink, "wp", "u", 0..n);
    let took = api.register_all(regs, server.concurrency).await?;
    println!(
        "registered {n} Web Push subscriptions in {:.2} s ({:.0}/s, {} concurrent)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        server.concurrency
    );
    let s = sink.clone();
    let (b, listing) =
        broadcast_rounds(&api, server.pid, &channel, n, Duration::from_secs(timeout), rounds, move || {
            s.count.load(Ordering::Relaxed)
        })
        .await?;
    println!("Web Push broadcast, best round: {}", b.describe());
    let md = format!(
        "| Web Push broadcast, {n} subscriptions (real P-256 keys) → local HTTP/1.1 sink; best of {rounds} rounds | **{r}/s** at the sink; {cr}/s confirmed final by the API |\n\
         | — that round: CPU per delivery (herald process); harness (sink + client); other processes on the machine | {cpu:.0} µs ({hc:.2} CPU-s over {w:.2} s wall = {hp:.0} % of 2 cores); {mc:.2} CPU-s; {oc:.2} CPU-s |\n\
         | — that round: peak 1-s window; delivered / failed; herald peak RSS | {peak:.0}/s; {d} / {f}; {hwm} MB |\n\
         | — that round: busiest herald threads (% of one core) | {th} |\n\
         | — all rounds (same subscriptions; the deliveries table grows by {n} rows per round) | {all} |\n\
         | (incidental) registration of the {n} subscriptions over HTTP, {conc} concurrent | {reg:.0}/s |",
        r = b.rate().map_or("n/a".into(), |r| format!("{r:.0}")),
        cr = b.confirmed_rate().map_or("n/a".into(), |r| format!("{r:.0}")),
        cpu = b.herald_cpu * 1e6 / n as f64,
        hc = b.herald_cpu,
        w = b.wall,
        hp = b.herald_cpu / b.wall / 2.0 * 100.0,
        mc = b.harness_cpu,
        oc = b.others_cpu,
        peak = b.peak_1s,
        d = b.delivered,
        f = b.failed,
        hwm = b.herald_hwm_kb / 1024,
        th = b.threads,
        all = listing.join("; "),
        conc = server.concurrency,
        reg = n as f64 / took.as_secs_f64(),
    );
    append(server.report.as_deref(), &md)?;
    println!(
        "RESULT webpush_rate={} confirmed_rate={} herald_us_per_delivery={:.0}",
        b.rate().map_or(0.0, |r| r.round()),
        b.confirmed_rate().map_or(0.0, |r| r.round()),
        b.herald_cpu * 1e6 / n as f64
    );
    Ok(())
}

async fn native(server: Server, n: usize, timeout: u64, rounds: usize) -> R<()> {
    let apns = MockApns::start(MockApnsConfig::with_test_key()).await?;
    let fcm = MockFcm::start(MockFcmConfig::with_test_key()).await?;
    apns.set_recording(false);
    fcm.set_recording(false);
    let api = Api::connect(&server).await?;
    let apns_channel = api.channel("apns", fixtures::apns_channel_config(apns.base_url())).await?;
    let fcm_channel = api.channel("fcm", fixtures::fcm_channel_config(&fcm)).await?;
    let apns_regs: Vec<(String, Value)> = (0..n)
        .map(|i| {
            let token = format!("{:064x}", 0xa11ce_u128 << 64 | i as u128);
            (format!("a{i}"), json!({"channel_id": apns_channel, "settings": {"token": token}}))
        })
        .collect();
    let fcm_regs: Vec<(String, Value)> = (0..n)
        .map(|i| {
            let token = format!("bench-fcm-token:APA91b{i:08}-{}", "x".repeat(100));
            (format!("f{i}"), json!({"channel_id": fcm_channel, "settings": {"token": token}}))
        })
        .collect();
    let took = api.register_all(apns_regs, server.concurrency).await?;
    println!("registered {n} APNs tokens in {:.2} s ({:.0}/s)", took.as_secs_f64(), n as f64 / took.as_secs_f64());
    let took = api.register_all(fcm_regs, server.concurrency).await?;
    println!("registered {n} FCM tokens in {:.2} s ({:.0}/s)", took.as_secs_f64(), n as f64 / took.as_secs_f64());

    let mut md = String::new();
    let mut summary = Vec::new();
    for (name, channel) in [("APNs", &apns_channel), ("FCM", &fcm_channel)] {
        println!("{name}:");
        let timeout = Duration::from_secs(timeout);
        let (b, listing) = match name {
            "APNs" => broadcast_rounds(&api, server.pid, channel, n, timeout, rounds, || apns.request_count()).await?,
            _ => broadcast_rounds(&api, server.pid, channel, n, timeout, rounds, || fcm.request_count()).await?,
        };
        println!("{name} broadcast, best round: {}", b.describe());
        let rejected = match name {
            "APNs" => apns.rejected().len(),
            _ => fcm.rejected().len(),
        };
        md.push_str(&format!(
            "| {name} broadcast, {n} tokens → in-process HTTP/2 mock (h2c, verifying, recording off); best of {rounds} rounds | **{r}/s** at the mock; {cr}/s confirmed final by the API |\n\
             | — {name}, that round: CPU per delivery (herald); harness (mocks + client); other processes; delivered / failed / mock-rejected | {cpu:.0} µs ({hc:.2} CPU-s over {w:.2} s = {hp:.0} % of 2 cores); {mc:.2} CPU-s; {oc:.2} CPU-s; {d} / {f} / {rej} |\n\
             | — {name}, that round: busiest herald threads (% of one core) | {th} |\n\
             | — {name}, all rounds | {all} |\n",
            r = b.rate().map_or("n/a".into(), |r| format!("{r:.0}")),
            cr = b.confirmed_rate().map_or("n/a".into(), |r| format!("{r:.0}")),
            cpu = b.herald_cpu * 1e6 / n as f64,
            hc = b.herald_cpu,
            w = b.wall,
            hp = b.herald_cpu / b.wall / 2.0 * 100.0,
            mc = b.harness_cpu,
            oc = b.others_cpu,
            th = b.threads,
            all = listing.join("; "),
            d = b.delivered,
            f = b.failed,
            rej = rejected,
        ));
        summary.push(format!("{}_rate={}", name.to_lowercase(), b.rate().map_or(0.0, |r| r.round())));
    }
    append(server.report.as_deref(), md.trim_end())?;
    println!("RESULT {}", summary.join(" "));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Latency

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

struct Phase {
    label: String,
    target: f64,
    issued: usize,
    planned: usize,
    send_secs: f64,
    errors: u64,
    behind_ms: f64,
    from_accept: Vec<f64>,
    from_start: Vec<f64>,
    api_ms: Vec<f64>,
    before_202: usize,
    herald_pct: f64,
    harness_pct: f64,
    others_pct: f64,
    threads: String,
}

impl Phase {
    fn line(&self) -> String {
        format!(
            "{label}: target {t:.0} sends/s, issued {i}/{p} in {ss:.1} s = {ach:.0}/s ({e} errors, client behind schedule by ≤{b:.0} ms); \
             matched {m}; 202 → provider: p50 {a50:.1} ms, p90 {a90:.1} ms, p99 {a99:.1} ms, max {amax:.1} ms ({bf} arrived before \
             their 202); request start → provider p50 {s50:.1} ms, p99 {s99:.1} ms; 202 response time p50 {p50:.1} ms, p99 {p99:.1} ms; \
             CPU: herald {hc:.0} %, harness {mc:.0} %, other processes {oc:.0} % of 2 cores; busiest herald threads: {th}",
            label = self.label,
            t = self.target,
            i = self.issued,
            p = self.planned,
            ss = self.send_secs,
            ach = self.issued as f64 / self.send_secs,
            e = self.errors,
            b = self.behind_ms,
            m = self.from_accept.len(),
            a50 = pct(&self.from_accept, 0.5),
            a90 = pct(&self.from_accept, 0.9),
            a99 = pct(&self.from_accept, 0.99),
            amax = self.from_accept.last().copied().unwrap_or(f64::NAN),
            bf = self.before_202,
            s50 = pct(&self.from_start, 0.5),
            s99 = pct(&self.from_start, 0.99),
            p50 = pct(&self.api_ms, 0.5),
            p99 = pct(&self.api_ms, 0.99),
            hc = self.herald_pct,
            mc = self.harness_pct,
            oc = self.others_pct,
            th = self.threads,
        )
    }

    fn markdown(&self) -> String {
        format!(
            "| send accepted (202) → first provider request: {label}; {t:.0} single-user sends/s planned, {ach:.0}/s issued ({i}/{p} sends) | **p50 {a50:.1} ms, p99 {a99:.1} ms**, max {amax:.1} ms; {m} matched |\n\
             | — same sends: request start → provider; `POST /v1/notifications` 202 time; CPU herald / harness / other processes | p50 {s50:.1} / p99 {s99:.1} ms; p50 {p50:.1} / p99 {p99:.1} ms; {hc:.0} / {mc:.0} / {oc:.0} % of 2 cores |\n\
             | — busiest herald threads (% of one core) | {th} |\n",
            label = self.label,
            t = self.target,
            ach = self.issued as f64 / self.send_secs,
            i = self.issued,
            p = self.planned,
            a50 = pct(&self.from_accept, 0.5),
            a99 = pct(&self.from_accept, 0.99),
            amax = self.from_accept.last().copied().unwrap_or(f64::NAN),
            m = self.from_accept.len(),
            s50 = pct(&self.from_start, 0.5),
            s99 = pct(&self.from_start, 0.99),
            p50 = pct(&self.api_ms, 0.5),
            p99 = pct(&self.api_ms, 0.99),
            hc = self.herald_pct,
            mc = self.harness_pct,
            oc = self.others_pct,
            th = self.threads,
        )
    }
}

/// Sends `to: {user}` open-loop at `rate` for `secs` (issuing stops at 2 × `secs` if the server
/// cannot keep up), each marked with `collapse_key = s<i>` (the Web Push `Topic` header the sink
/// keys arrivals by), then waits (bounded) for the deliveries.
#[allow(clippy::too_many_arguments)] // one measurement phase, its knobs spelled out
async fn latency_phase(
    api: &Arc<Api>,
    sink: &Arc<Sink>,
    pid: u32,
    label: String,
    rate: f64,
    secs: f64,
    users: usize,
    first: usize,
    max_outstanding: usize,
) -> R<Phase> {
    wait_quiet(pid, Duration::from_secs(120)).await;
    let planned = ((rate * secs).ceil() as usize).min(sink.arrivals.len() - first);
    let base = sink.base;
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..planned).map(|_| AtomicU64::new(0)).collect());
    let accepted: Arc<Vec<AtomicU64>> = Arc::new((0..planned).map(|_| AtomicU64::new(0)).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(max_outstanding));
    let mut behind_max = Duration::ZERO;
    let threads0 = thread_cpu(pid);
    let cpu0 = cpu(pid);
    let t0 = Instant::now();
    let stop_issuing = t0 + Duration::from_secs_f64(secs * 2.0);
    let mut tasks = tokio::task::JoinSet::new();
    let mut issued = 0;
    for i in 0..planned {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let Ok(Ok(permit)) = tokio::time::timeout_at(stop_issuing.into(), sem.clone().acquire_owned()).await else {
            break;
        };
        if Instant::now() >= stop_issuing {
            break;
        }
        behind_max = behind_max.max(Instant::now().saturating_duration_since(due));
        let (api, started, accepted, errors) = (api.clone(), started.clone(), accepted.clone(), errors.clone());
        let body = json!({"to": {"user": format!("l{}", i % users)}, "title": TITLE, "body": BODY, "collapse_key": format!("s{}", first + i)});
        tasks.spawn(async move {
            started[i].store(base.elapsed().as_nanos() as u64 + 1, Ordering::Relaxed);
            match api.post("/v1/notifications", &body).await {
                Ok((202, _)) => accepted[i].store(base.elapsed().as_nanos() as u64 + 1, Ordering::Relaxed),
                Ok((s, v)) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("send {i}: {s} {v}");
                    }
                }
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("send {i}: {e}");
                    }
                }
            }
            drop(permit);
        });
        issued += 1;
        while tasks.try_join_next().is_some() {}
    }
    let send_secs = t0.elapsed().as_secs_f64();
    // Outstanding sends finish within the client timeout; deliveries get 30 s more.
    while tasks.join_next().await.is_some() {}
    let accepted_n = accepted.iter().filter(|a| a.load(Ordering::Relaxed) > 0).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let arrived = (0..issued).filter(|&i| sink.arrivals[first + i].load(Ordering::Relaxed) > 0).count();
        if arrived >= accepted_n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu1 = cpu(pid);
    let wall = cpu1.at.duration_since(cpu0.at).as_secs_f64();
    let threads = thread_report(&threads0, &thread_cpu(pid), wall);
    let mut phase = Phase {
        label,
        target: rate,
        issued,
        planned,
        send_secs,
        errors: errors.load(Ordering::Relaxed),
        behind_ms: behind_max.as_secs_f64() * 1e3,
        from_accept: Vec::new(),
        from_start: Vec::new(),
        api_ms: Vec::new(),
        before_202: 0,
        herald_pct: (cpu1.herald - cpu0.herald) / wall / 2.0 * 100.0,
        harness_pct: (cpu1.me - cpu0.me) / wall / 2.0 * 100.0,
        others_pct: cpu1.others_since(&cpu0) / wall / 2.0 * 100.0,
        threads,
    };
    for i in 0..issued {
        let (s, a, r) = (
            started[i].load(Ordering::Relaxed),
            accepted[i].load(Ordering::Relaxed),
            sink.arrivals[first + i].load(Ordering::Relaxed),
        );
        if a > 0 && s > 0 {
            phase.api_ms.push((a - s) as f64 / 1e6);
        }
        if r > 0 && a > 0 {
            let d = (r as f64 - a as f64) / 1e6;
            if d < 0.0 {
                phase.before_202 += 1;
            }
            phase.from_accept.push(d);
        }
        if r > 0 && s > 0 {
            phase.from_start.push((r - s) as f64 / 1e6);
        }
    }
    for v in [&mut phase.from_accept, &mut phase.from_start, &mut phase.api_ms] {
        v.sort_by(f64::total_cmp);
    }
    Ok(phase)
}

#[allow(clippy::too_many_arguments)]
async fn latency(
    server: Server,
    calibrate_n: usize,
    rate: Option<f64>,
    fractions: &str,
    secs: f64,
    max_outstanding: usize,
    users: usize,
) -> R<()> {
    let fractions: Vec<f64> = fractions.split(',').map(|f| f.trim().parse()).collect::<Result<_, _>>()?;
    // 1. The max Web Push broadcast rate of this server, this run (its own account).
    let (max_rate, calib_note) = match rate {
        Some(r) => (r, format!("given max rate {r:.0}/s")),
        None => {
            let api = Api::connect(&server).await?;
            let channel = api.channel("web_push", json!({"subject": "mailto:bench@example.com"})).await?;
            let sink = Sink::start(0).await?;
            api.register_all(web_push_regs(&sink, "wp", "c", 0..calibrate_n), server.concurrency).await?;
            let s = sink.clone();
            let b = broadcast(&api, server.pid, &channel, calibrate_n, Duration::from_secs(300), move || {
                s.count.load(Ordering::Relaxed)
            })
            .await?;
            println!("calibration broadcast: {}", b.describe());
            let r = b.rate().ok_or("calibration broadcast did not finish")?;
            (
                r,
                format!(
                    "max Web Push broadcast rate measured in this run: {r:.0} deliveries/s ({calibrate_n} subscriptions)"
                ),
            )
        }
    };
    println!("{calib_note}");

    // 2. A second account: `users` users with one subscription each; sends go round-robin.
    let slots = 2_000_000;
    let sink = Sink::start(slots).await?;
    let api = Api::connect(&server).await?;
    api.channel("web_push", json!({"subject": "mailto:bench@example.com"})).await?;
    let regs: Vec<(String, Value)> = (0..users)
        .map(|u| {
            let ua = UaKeyPair::generate();
            let settings =
                json!({"endpoint": sink.url(&format!("/lat/{u}")), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
            (format!("l{u}"), json!({ "settings": settings }))
        })
        .collect();
    api.register_all(regs, server.concurrency).await?;

    // 3. What single-user sends this server sustains: closed loop, 64 in flight, 5 s.
    let cap_n = Arc::new(AtomicUsize::new(0));
    let cap_start = Instant::now();
    let cap_end = cap_start + Duration::from_secs(5);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (api, cap_n) = (api.clone(), cap_n.clone());
        tasks.spawn(async move {
            while Instant::now() < cap_end {
                let i = cap_n.fetch_add(1, Ordering::Relaxed);
                let body = json!({"to": {"user": format!("l{}", i % users)}, "title": TITLE, "body": BODY});
                let _ = api.post("/v1/notifications", &body).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let capacity = cap_n.load(Ordering::Relaxed) as f64 / cap_start.elapsed().as_secs_f64();
    let cap_note = format!(
        "single-user send capacity (`POST /v1/notifications` to one user, 64 in flight, 5 s, {users}-user account): {capacity:.0} sends/s"
    );
    println!("{cap_note}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut phases = Vec::new();
    let mut next = 0usize;
    for fraction in &fractions {
        let rate = (max_rate * fraction).max(1.0);
        let label = format!("{:.0} % of the max broadcast rate", fraction * 100.0);
        let p = latency_phase(&api, &sink, server.pid, label, rate, secs, users, next, max_outstanding).await?;
        println!("{}", p.line());
        next += p.planned;
        phases.push(p);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if fractions.iter().any(|f| max_rate * f > capacity) {
        // The planned rate exceeds what single-user sends sustain: also measure at 70 % of that.
        let label = "70 % of the single-user send capacity".to_string();
        let p =
            latency_phase(&api, &sink, server.pid, label, capacity * 0.7, secs, users, next, max_outstanding).await?;
        println!("{}", p.line());
        phases.push(p);
    }
    let mut md = format!("| calibration | {calib_note}; {cap_note} |\n");
    for p in &phases {
        md.push_str(&p.markdown());
    }
    append(server.report.as_deref(), md.trim_end())?;
    let summary: Vec<String> = phases
        .iter()
        .map(|p| {
            format!(
                "[{}: {:.0}/s issued, p50 {:.1} ms, p99 {:.1} ms]",
                p.label,
                p.issued as f64 / p.send_secs,
                pct(&p.from_accept, 0.5),
                pct(&p.from_accept, 0.99)
            )
        })
        .collect();
    println!("RESULT broadcast_max={max_rate:.0}/s single_send_capacity={capacity:.0}/s {}", summary.join(" "));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RSS exercise

/// Waits (bounded) until the API reports every delivery of `id` final; returns the counts.
async fn wait_final(api: &Api, id: &str, timeout: Duration) -> R<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = api.counts(id).await?;
        let c = &v["counts"];
        let pending = c["queued"].as_u64().unwrap_or(0) + c["sending"].as_u64().unwrap_or(0);
        if (v["fanout"].is_null() || v["fanout"]["status"] != "pending") && pending == 0 {
            return Ok(c.clone());
        }
        if Instant::now() > deadline {
            return Err(format!("notification {id} not final after {timeout:?}: {c}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rss_exercise(server: Server, sink_port: u16, users: usize, topic: &str, new_registrations: usize) -> R<()> {
    let sink = Sink::start_on(sink_port, 0).await?;
    let api = Api::connect(&server).await?;
    let t = Instant::now();
    // Deterministic spread of user numbers over the whole table.
    let pick = |k: usize| 1 + (k * 7919 + 13) % users;

    // 1. Lists: 20 pages of the topic, 200 users' subscription lists.
    let mut cursor: Option<String> = None;
    let mut listed = 0;
    for _ in 0..20 {
        let q = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, page) = api.get(&format!("/v1/topics/{topic}/subscriptions?limit=100{q}")).await?;
        if status != 200 {
            return Err(format!("topic list: {status} {page}").into());
        }
        listed += page["data"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let t_users = Instant::now();
    for k in 0..200 {
        let (status, page) = api.get(&format!("/v1/users/r{}/subscriptions", pick(k))).await?;
        if status != 200 || page["data"].as_array().map_or(0, Vec::len) != 1 {
            return Err(format!("user list r{}: {status} {page}", pick(k)).into());
        }
        listed += 1;
    }
    let user_list_ms = t_users.elapsed().as_secs_f64() * 1e3 / 200.0;
    println!(
        "listed {listed} subscriptions in {:.1} s ({user_list_ms:.0} ms per user list)",
        t.elapsed().as_secs_f64()
    );

    // 2. New registrations.
    let t = Instant::now();
    let regs = web_push_regs(&sink, "new", "new", 0..new_registrations);
    api.register_all(regs, server.concurrency).await?;
    let reg_secs = t.elapsed().as_secs_f64();
    println!(
        "registered {new_registrations} new subscriptions in {reg_secs:.1} s ({:.0}/s)",
        new_registrations as f64 / reg_secs
    );

    // 3. 100 sends to single bulk-inserted users, then one topic broadcast.
    let t = Instant::now();
    let mut ids = Vec::new();
    for k in 0..100 {
        let (status, v) = api
            .post(
                "/v1/notifications",
                &json!({"to": {"user": format!("r{}", pick(k + 5000))}, "title": TITLE, "body": BODY}),
            )
            .await?;
        if status != 202 {
            return Err(format!("send: {status} {v}").into());
        }
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    let mut delivered = 0;
    for id in &ids {
        delivered += wait_final(&api, id, Duration::from_secs(60)).await?["delivered"].as_u64().unwrap_or(0);
    }
    let send_secs = t.elapsed().as_secs_f64();
    println!("100 single-user sends: {delivered} delivered in {send_secs:.1} s");
    let t = Instant::now();
    let (status, v) =
        api.post("/v1/notifications", &json!({"to": {"topic": topic}, "title": TITLE, "body": BODY})).await?;
    if status != 202 {
        return Err(format!("topic send: {status} {v}").into());
    }
    let c = wait_final(&api, v["id"].as_str().unwrap_or_default(), Duration::from_secs(300)).await?;
    let topic_secs = t.elapsed().as_secs_f64();
    println!("topic broadcast: {c} in {topic_secs:.1} s");
    println!(
        "RESULT user_list={user_list_ms:.0}ms/request registered={new_registrations} ({:.0}/s) single_sends_delivered={delivered}/100 ({:.1} sends/s, sequential) topic_delivered={} ({:.0}/s) sink_requests={}",
        new_registrations as f64 / reg_secs,
        100.0 / send_secs,
        c["delivered"],
        c["delivered"].as_f64().unwrap_or(0.0) / topic_secs,
        sink.count.load(Ordering::Relaxed)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// sqlx round trips

/// Context switches of every thread of this process so far.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
                .sum::<u64>()
        })
        .sum()
}

async fn sqlx_roundtrip(dir: &str, report: Option<&str>) -> R<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
    let opts = SqliteConnectOptions::new()
        .filename(format!("{dir}/roundtrip.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, status TEXT NOT NULL, n INTEGER NOT NULL)")
        .execute(&pool)
        .await?;
    let rows = 20_000i64;
    sqlx::query("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) INSERT OR IGNORE INTO t SELECT i, 'sending', 0 FROM s")
        .bind(rows)
        .execute(&pool)
        .await?;

    struct M {
        us: f64,
        cpu_us: f64,
        switches: f64,
    }
    async fn measure<F: std::future::Future<Output = R<()>>>(ops: u64, f: impl FnOnce() -> F) -> R<M> {
        let (c0, s0, t0) = (proc_cpu_secs("self"), context_switches(), Instant::now());
        f().await?;
        let (c1, s1, t1) = (proc_cpu_secs("self"), context_switches(), Instant::now());
        Ok(M {
            us: t1.duration_since(t0).as_secs_f64() * 1e6 / ops as f64,
            cpu_us: (c1 - c0) * 1e6 / ops as f64,
            switches: (s1 - s0) as f64 / ops as f64,
        })
    }

    let n = 20_000u64;
    let select1 = measure(n, || async {
        for _ in 0..n {
            sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&pool).await?;
        }
        Ok(())
    })
    .await?;
    // Like record_results: one UPDATE per row, 512 per transaction.
    let per_row = measure(n, || async {
        let mut id = 0i64;
        for _ in 0..(n / 512) {
            let mut tx = pool.begin().await?;
            for _ in 0..512 {
                id = id % rows + 1;
                sqlx::query("UPDATE t SET status = $1, n = n + 1 WHERE id = $2 AND status = 'sending'")
                    .bind("sending")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    })
    .await?;
    // The same rows, one statement per 512 (ids as a JSON array).
    let batched = measure(n, || async {
        let mut id = 0i64;
        for _ in 0..(n / 512) {
            let ids: Vec<i64> = (0..512)
                .map(|_| {
                    id = id % rows + 1;
                    id
                })
                .collect();
            sqlx::query("UPDATE t SET status = $1, n = n + 1 WHERE id IN (SELECT value FROM json_each($2)) AND status = 'sending'")
                .bind("sending")
                .bind(serde_json::to_string(&ids)?)
                .execute(&pool)
                .await?;
        }
        Ok(())
    })
    .await?;
    let md = format!(
        "| sqlx SQLite: `SELECT 1` round trip, 1 connection (worker thread + channels) | {:.1} µs wall, {:.1} µs CPU, {:.1} context switches per statement |\n\
         | sqlx SQLite: single-row `UPDATE` by id, 512 per transaction (the shape of `record_results`) | {:.1} µs wall, {:.1} µs CPU, {:.1} context switches per row |\n\
         | sqlx SQLite: the same rows, one `UPDATE … WHERE id IN (json_each)` per 512 | {:.1} µs wall, {:.1} µs CPU, {:.2} context switches per row |",
        select1.us,
        select1.cpu_us,
        select1.switches,
        per_row.us,
        per_row.cpu_us,
        per_row.switches,
        batched.us,
        batched.cpu_us,
        batched.switches
    );
    println!("{md}");
    append(report, &md)?;
    Ok(())
}
