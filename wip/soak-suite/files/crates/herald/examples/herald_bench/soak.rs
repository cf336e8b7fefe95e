//! `herald_bench soak`: the soak and fault suite behind `scripts/soak` (see BENCHMARKS.md).
//!
//! The script starts a PostgreSQL of its own and exports the nodes' environment; this driver
//! starts the `herald serve` nodes, a faulty Web Push sink ([`soak_sink`]), calibrates the
//! cluster's single-user send capacity, then runs the 98 / 1 / 1 send / subscribe / unsubscribe
//! mix open-loop at a fraction of it while a schedule injects faults (sink 5xx bursts, 429 storms
//! with `Retry-After`, connection resets, hangs past Herald's timeout; a PostgreSQL restart; a
//! node SIGKILLed and restarted). Afterwards it drains the queue and checks every delivery in the
//! database against what the sink saw ([`soak_check`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::soak_check;
use super::soak_load::{Client, Traffic};
use super::soak_nodes::{self, Nodes, ReadyChange, Sample};
use super::soak_sink::{Fault, FaultSink, Key};
use super::{R, append, machine_busy_secs, proc_cpu_secs};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The release `herald` binary.
    #[arg(long)]
    pub herald: PathBuf,
    /// `herald serve` nodes on the one database.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// The soak's database (the nodes get it as HERALD_DATABASE_URL from the environment).
    #[arg(long)]
    pub pg_url: String,
    /// `pg_ctl -D <data> -l <log>` of the soak's PostgreSQL, as a shell command prefix; the
    /// driver appends `-m fast -w restart`, `-m fast -w stop` and `-w start`.
    #[arg(long)]
    pub pg_ctl: String,
    /// How long PostgreSQL stays stopped in the outage step (longer than node_timeout_seconds).
    #[arg(long, default_value_t = 8)]
    pub pg_down_secs: u64,
    #[arg(long)]
    pub admin_token: String,
    /// PostgreSQL's `postmaster.pid`, to count its CPU.
    #[arg(long)]
    pub pg_pidfile: Option<PathBuf>,
    /// Directory for node logs and pid files.
    #[arg(long)]
    pub tmp: PathBuf,
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Fraction of the calibrated capacity the soak ramps to.
    #[arg(long, default_value_t = 0.7)]
    pub fraction: f64,
    /// Operations per second at full load; skips the calibration.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 10.0)]
    pub calibrate_secs: f64,
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// Requests outstanding at most.
    #[arg(long, default_value_t = 1024)]
    pub max_outstanding: usize,
    /// How long the sink holds a hung request (longer than Herald's provider timeout).
    #[arg(long, default_value_t = 15)]
    pub hold_secs: u64,
    /// How long the sink takes to answer in the slow window around the SIGKILL.
    #[arg(long, default_value_t = 1500)]
    pub slow_ms: u64,
    /// Herald's node_timeout_seconds (for explaining duplicates after a database restart).
    #[arg(long, default_value_t = 5)]
    pub node_timeout_secs: u64,
    #[arg(long)]
    pub report: Option<String>,
}

/// One fault as it happened (ns since the soak's base clock).
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: &'static str,
    pub start_ns: u64,
    pub end_ns: u64,
    pub note: String,
}

/// A SIGKILL and what followed.
#[derive(Clone, Debug, Default)]
pub struct Kill {
    pub node: usize,
    pub kill_ns: u64,
    pub dead_id: String,
    /// Deliveries leased by the dead node at the kill: (delivery id, notification id, subscription id).
    pub in_flight: Vec<(i64, String, i64)>,
    pub reaped_ns: Option<u64>,
    pub ready_ns: Option<u64>,
}

#[derive(Default)]
pub struct Timeline {
    pub events: Vec<Event>,
    pub kills: Vec<Kill>,
}

enum Step {
    /// A sink fault for a share of the requests, for some seconds.
    Sink(Fault, u32, u64),
    /// `pg_ctl restart -m fast`.
    PgRestart,
    /// PostgreSQL stopped for some seconds, then started.
    PgDown(u64),
    /// SIGKILL of a node, restarted after some seconds.
    Kill(usize, u64),
}

/// The fault schedule: one cycle per whole 10 minutes (at least one), each fault at a fixed
/// share of its cycle; the SIGKILL falls in the middle of a slow-sink window so the dead node
/// has sends in flight.
fn schedule(total: f64, nodes: usize, pg_down: u64) -> Vec<(f64, Step)> {
    let cycles = (total / 600.0).floor().max(1.0) as usize;
    let len = total / cycles as f64;
    let mut out = Vec::new();
    for c in 0..cycles {
        let at = |share: f64| c as f64 * len + share * len;
        out.push((at(0.10), Step::Sink(Fault::ServerErrors, 50, 10)));
        out.push((at(0.20), Step::PgRestart));
        out.push((at(0.30), Step::Sink(Fault::Slow, 100, 12)));
        out.push((at(0.30) + 6.0, Step::Kill(nodes - 1, 10)));
        out.push((at(0.45), Step::PgDown(pg_down)));
        out.push((at(0.55), Step::Sink(Fault::RateLimited, 80, 15)));
        out.push((at(0.68), Step::Sink(Fault::Reset, 30, 15)));
        out.push((at(0.82), Step::Sink(Fault::Hang, 5, 15)));
    }
    out
}

/// Runs `<pg_ctl> <args>` with no pipes (a started server would inherit them and hold them
/// open); a description of the failure, if any.
async fn pg_ctl(prefix: &str, args: &str) -> Option<String> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix} {args}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match tokio::time::timeout(Duration::from_secs(120), status).await {
        Ok(Ok(s)) if s.success() => None,
        Ok(Ok(s)) => Some(format!("pg_ctl {args} failed: {s}")),
        Ok(Err(e)) => Some(format!("pg_ctl {args} failed: {e}")),
        Err(_) => Some(format!("pg_ctl {args} did not return within 120 s")),
    }
}

/// Deliveries not yet final in the soak account.
pub async fn pending(pool: &PgPool, account: i64) -> Option<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE account_id = $1 AND status IN ('queued', 'sending')")
        .bind(account)
        .fetch_one(pool)
        .await
        .ok()
}

async fn drain(pool: &PgPool, account: i64, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if pending(pool, account).await == Some(0) {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

struct Ctx {
    base: Instant,
    client: Arc<Client>,
    sink: Arc<FaultSink>,
    nodes: Arc<tokio::sync::Mutex<Nodes>>,
    pids: Arc<Mutex<Vec<u32>>>,
    pool: PgPool,
    timeline: Arc<Mutex<Timeline>>,
    slow_ms: u64,
}

fn now_ns(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

async fn run_step(ctx: &Ctx, step: Step, ctl: &str) {
    let base = ctx.base;
    match step {
        Step::Sink(fault, percent, secs) => {
            let start_ns = now_ns(base);
            ctx.sink.set_fault(fault, percent);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            ctx.sink.set_fault(Fault::None, 0);
            let kind = match fault {
                Fault::ServerErrors => "sink 5xx burst",
                Fault::RateLimited => "sink 429 storm (Retry-After 1-3 s)",
                Fault::Reset => "sink connection resets",
                Fault::Hang => "sink hangs past Herald's timeout",
                Fault::Slow => "sink answers slowly",
                Fault::None => "none",
            };
            let note = match fault {
                Fault::Slow => format!("201 after {} ms to {percent} % of requests for {secs} s", ctx.slow_ms),
                _ => format!("{percent} % of requests for {secs} s"),
            };
            println!("fault: {kind}: {note}");
            let ev = Event { kind, start_ns, end_ns: now_ns(base), note };
            ctx.timeline.lock().unwrap_or_else(|e| e.into_inner()).events.push(ev);
        }
        Step::PgRestart => {
            let start_ns = now_ns(base);
            let failed = pg_ctl(ctl, "-m fast -w restart").await;
            let end_ns = now_ns(base);
            let note = failed.unwrap_or_else(|| "pg_ctl restart -m fast".into());
            println!("fault: PostgreSQL restarted in {:.2} s ({note})", (end_ns - start_ns) as f64 / 1e9);
            let ev = Event { kind: "PostgreSQL restart", start_ns, end_ns, note };
            ctx.timeline.lock().unwrap_or_else(|e| e.into_inner()).events.push(ev);
        }
        Step::PgDown(secs) => {
            let start_ns = now_ns(base);
            let stopped = pg_ctl(ctl, "-m fast -w stop").await;
            let down_ns = now_ns(base);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let started = pg_ctl(ctl, "-w start").await;
            let end_ns = now_ns(base);
            let note = match (stopped, started) {
                (None, None) => format!(
                    "pg_ctl stop -m fast ({:.2} s), {secs} s down, pg_ctl start",
                    (down_ns - start_ns) as f64 / 1e9
                ),
                (a, b) => format!("{} {}", a.unwrap_or_default(), b.unwrap_or_default()),
            };
            println!("fault: PostgreSQL down for {:.2} s ({note})", (end_ns - start_ns) as f64 / 1e9);
            let ev = Event { kind: "PostgreSQL down", start_ns, end_ns, note };
            ctx.timeline.lock().unwrap_or_else(|e| e.into_inner()).events.push(ev);
        }
        Step::Kill(i, restart_after) => {
            let mut kill = Kill { node: i, ..Default::default() };
            {
                let mut nodes = ctx.nodes.lock().await;
                kill.dead_id = nodes.list[i].id.clone();
                ctx.client.up[i].store(false, Ordering::Relaxed);
                kill.kill_ns = now_ns(base);
                if let Err(e) = nodes.kill(i).await {
                    eprintln!("SIGKILL of node {i} failed: {e}");
                }
            }
            // What the dead node held: nothing can change these rows until its leases are freed.
            kill.in_flight = sqlx::query_as(
                "SELECT id, notification_id, subscription_id FROM deliveries WHERE status = 'sending' AND lease_owner LIKE $1",
            )
            .bind(format!("{}.%", kill.dead_id))
            .fetch_all(&ctx.pool)
            .await
            .unwrap_or_default();
            println!("fault: node {i} SIGKILLed with {} deliveries leased", kill.in_flight.len());
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let gone: Option<bool> = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM nodes WHERE id = $1)")
                    .bind(&kill.dead_id)
                    .fetch_one(&ctx.pool)
                    .await
                    .ok();
                if gone == Some(true) {
                    kill.reaped_ns = Some(now_ns(base));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let restart_at = base + Duration::from_nanos(kill.kill_ns) + Duration::from_secs(restart_after);
            tokio::time::sleep_until(restart_at.into()).await;
            let mut nodes = ctx.nodes.lock().await;
            match nodes.start(i).await {
                Ok(()) => {
                    kill.ready_ns = Some(now_ns(base));
                    ctx.pids.lock().unwrap_or_else(|e| e.into_inner())[i] = nodes.list[i].pid;
                    ctx.client.up[i].store(true, Ordering::Relaxed);
                    println!("fault: node {i} restarted (pid {})", nodes.list[i].pid);
                }
                Err(e) => eprintln!("restarting node {i} failed: {e}"),
            }
            let note = format!("node {i} SIGKILLed, restarted after {restart_after} s");
            let ev = Event { kind: "node SIGKILL", start_ns: kill.kill_ns, end_ns: kill.ready_ns.unwrap_or(0), note };
            let mut t = ctx.timeline.lock().unwrap_or_else(|e| e.into_inner());
            t.events.push(ev);
            t.kills.push(kill);
        }
    }
}

/// CPU seconds over the soak and drain, and the wall time.
pub struct Cpu {
    pub herald: f64,
    pub postgres: f64,
    pub harness: f64,
    pub machine: f64,
    pub wall: f64,
}

/// What the soak measured, for the checks.
pub struct Run {
    pub args: Args,
    pub account: i64,
    pub capacity_note: String,
    pub target: f64,
    pub soak_start_ns: u64,
    pub soak_end_ns: u64,
    pub ops: u64,
    pub behind_max_ms: f64,
    pub drained: Option<Duration>,
    pub timeline: Timeline,
    pub samples: Vec<Sample>,
    pub ready: Vec<ReadyChange>,
    pub crashed: Vec<String>,
    pub cpu: Cpu,
    pub initial_subs: usize,
}

pub async fn run(args: Args) -> R<()> {
    let base = Instant::now();
    let pool =
        PgPoolOptions::new().max_connections(3).acquire_timeout(Duration::from_secs(5)).connect(&args.pg_url).await?;
    let sink = FaultSink::start(base, Duration::from_secs(args.hold_secs), Duration::from_millis(args.slow_ms)).await?;
    let mut nodes = Nodes::new(args.herald.clone(), args.tmp.clone(), pool.clone());
    for i in 0..args.nodes {
        nodes.start(i).await?;
        println!("node {i}: pid {} on {} (node id {})", nodes.list[i].pid, nodes.list[i].url, nodes.list[i].id);
    }
    let urls: Vec<String> = nodes.list.iter().map(|n| n.url.clone()).collect();
    let pids = Arc::new(Mutex::new(nodes.list.iter().map(|n| n.pid).collect::<Vec<_>>()));
    let client = Client::new(base, urls.clone())?;
    let account = client.admin(&args.admin_token, "/admin/v1/accounts", &json!({"name": "soak"})).await?;
    *client.sk.lock().unwrap_or_else(|e| e.into_inner()) = account["secret_key"].as_str().ok_or("no key")?.into();
    let account_id = account["id"].as_i64().ok_or("no account id")?;
    let channel = json!({"name": "web", "type": "web_push", "config": {"subject": "mailto:soak@example.com"}});
    let r = client.call(Method::POST, "/v1/channels", Some(&channel), None, Duration::from_secs(30)).await?;
    if r.status != 201 {
        return Err(format!("creating the channel: {} {}", r.status, r.body).into());
    }
    let traffic = Traffic::new(client.clone(), sink.clone(), args.users);
    let t = Instant::now();
    traffic.populate(10, 32).await?;
    let initial_subs = traffic.subs.lock().unwrap_or_else(|e| e.into_inner()).len();
    println!("registered {initial_subs} subscriptions for {} users in {:.1} s", args.users, t.elapsed().as_secs_f64());

    // Capacity: closed loop over both nodes; bounded by the slower of accepting and delivering.
    let (target, capacity_note) = match args.rate {
        Some(r) => (r, format!("given rate {r:.0} operations/s")),
        None => {
            let created0 = sink.created();
            let t = Instant::now();
            let (accept_rate, deliveries) = traffic.closed_loop(64, args.calibrate_secs).await;
            let secs = t.elapsed().as_secs_f64();
            let sends = (accept_rate * secs).max(1.0);
            let delivered_rate = (sink.created() - created0) as f64 / secs;
            let per_send = deliveries as f64 / sends;
            let capacity = accept_rate.min(delivered_rate / per_send.max(0.01));
            let drained = drain(&pool, account_id, Duration::from_secs(120)).await;
            let note = format!(
                "closed loop, 64 sends in flight over {} nodes for {secs:.0} s: {accept_rate:.0} sends/s accepted, \
                 {delivered_rate:.0} deliveries/s at the sink ({per_send:.2} per send) → capacity {capacity:.0} sends/s; \
                 backlog drained in {}",
                args.nodes,
                drained.map_or("(not within 120 s)".into(), |d| format!("{:.1} s", d.as_secs_f64()))
            );
            println!("calibration: {note}");
            (capacity * args.fraction, note)
        }
    };

    // The soak.
    let total = args.minutes * 60.0;
    let ramp = (total / 5.0).min(60.0);
    println!("soak: {:.0} s, ramping to {target:.0} operations/s over {ramp:.0} s", total);
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(Mutex::new(Vec::new()));
    let sampler = soak_nodes::sample_loop(
        pids.clone(),
        args.pg_pidfile.clone(),
        base,
        Duration::from_secs(5),
        samples.clone(),
        stop.clone(),
    );
    let poller = soak_nodes::readyz_loop(urls.clone(), base, ready.clone(), stop.clone());
    let nodes = Arc::new(tokio::sync::Mutex::new(nodes));
    let ctx = Arc::new(Ctx {
        base,
        client: client.clone(),
        sink: sink.clone(),
        nodes: nodes.clone(),
        pids: pids.clone(),
        pool: pool.clone(),
        timeline: timeline.clone(),
        slow_ms: args.slow_ms,
    });
    let t0 = Instant::now();
    let soak_start_ns = now_ns(base);
    let cpu0 = (proc_cpu_secs("self"), machine_busy_secs());
    let cpu_of = |samples: &[Sample], postgres: bool| -> f64 {
        // CPU of every node process (or PostgreSQL): last sample minus first, per pid.
        let mut by_pid: std::collections::BTreeMap<u32, (f64, f64)> = Default::default();
        for s in samples.iter().filter(|s| s.ns >= soak_start_ns && (s.node == soak_nodes::POSTGRES) == postgres) {
            let e = by_pid.entry(s.pid).or_insert((s.cpu_secs, s.cpu_secs));
            e.1 = s.cpu_secs;
        }
        by_pid.values().map(|(a, b)| b - a).sum()
    };
    let ctl = args.pg_ctl.clone();
    let (node_count, pg_down) = (args.nodes, args.pg_down_secs);
    let scheduler = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            // Each step on its own task at its time: the SIGKILL falls inside a sink window.
            let mut steps = tokio::task::JoinSet::new();
            for (at, step) in schedule(total, node_count, pg_down) {
                let (ctx, ctl) = (ctx.clone(), ctl.clone());
                steps.spawn(async move {
                    tokio::time::sleep_until((t0 + Duration::from_secs_f64(at)).into()).await;
                    run_step(&ctx, step, &ctl).await;
                });
            }
            while steps.join_next().await.is_some() {}
        })
    };
    let progress = {
        let (traffic, pool, stop) = (traffic.clone(), pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                if !tick.is_multiple_of(30) {
                    continue;
                }
                let sends = traffic.sends.lock().unwrap_or_else(|e| e.into_inner()).len();
                let p = pending(&pool, account_id).await;
                println!(
                    "[{:>4.0} s] sends done {sends}, sink 201s {}, answers {:?}, deliveries pending {p:?}",
                    t0.elapsed().as_secs_f64(),
                    traffic.sink.created(),
                    traffic.sink.answers()
                );
            }
        })
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(args.max_outstanding));
    let mut tasks = tokio::task::JoinSet::new();
    let mut due = t0;
    let end = t0 + Duration::from_secs_f64(total);
    let mut n = 0u64;
    let mut behind = Duration::ZERO;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        let permit = sem.clone().acquire_owned().await?;
        behind = behind.max(Instant::now().saturating_duration_since(due));
        let t = traffic.clone();
        tasks.spawn(async move {
            t.op(n).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        n += 1;
        let share = (due.duration_since(t0).as_secs_f64() / ramp).min(1.0);
        due += Duration::from_secs_f64(1.0 / (target * (0.1 + 0.9 * share)).max(1.0));
    }
    let soak_end_ns = now_ns(base);
    println!("traffic stopped after {n} operations; waiting for the last answers");
    while tasks.join_next().await.is_some() {}
    scheduler.await?;
    let drained = drain(&pool, account_id, Duration::from_secs(600)).await;
    println!("queue drained: {drained:?}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(sampler, poller, progress);
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let cpu = Cpu {
        herald: cpu_of(&samples, false),
        postgres: cpu_of(&samples, true),
        harness: proc_cpu_secs("self") - cpu0.0,
        machine: machine_busy_secs() - cpu0.1,
        wall: t0.elapsed().as_secs_f64(),
    };
    let crashed = nodes.lock().await.exited();
    let run = Run {
        args: args.clone(),
        account: account_id,
        capacity_note,
        target,
        soak_start_ns,
        soak_end_ns,
        ops: n,
        behind_max_ms: behind.as_secs_f64() * 1e3,
        drained,
        timeline: std::mem::take(&mut *timeline.lock().unwrap_or_else(|e| e.into_inner())),
        samples,
        ready: std::mem::take(&mut *ready.lock().unwrap_or_else(|e| e.into_inner())),
        crashed,
        cpu,
        initial_subs,
    };
    let verdict = soak_check::check(&run, &traffic, &sink, &pool).await;
    nodes.lock().await.stop_all().await;
    let (md, failed) = verdict?;
    println!("{md}");
    append(args.report.as_deref(), md.trim_end())?;
    if failed.is_empty() {
        println!("RESULT soak passed");
        Ok(())
    } else {
        println!("RESULT soak FAILED: {}", failed.join("; "));
        Err(format!("{} check(s) failed", failed.len()).into())
    }
}

/// (send index, subscription index) of a delivery row, from the notification's idempotency key
/// and the driver's registry of subscription ids.
pub fn key_of(
    send_of: &std::collections::HashMap<String, u32>,
    sub_of: &std::collections::HashMap<i64, u32>,
    notification: &str,
    subscription: i64,
) -> Option<Key> {
    Some((*send_of.get(notification)?, *sub_of.get(&subscription)?))
}
