//! The soak's `herald serve` processes: started with the environment the script exported (plus
//! their own `HERALD_LISTEN`), SIGKILLed and restarted on the same port, watched through
//! `/readyz` and `/proc`. Each node's pid is written to `<tmp>/node-<i>.pid` so the script's
//! cleanup can stop it even if this driver dies first.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::process::{Child, Command};

use super::{R, proc_cpu_secs, proc_status_kb};

pub struct Node {
    pub port: u16,
    pub url: String,
    child: Option<Child>,
    pub pid: u32,
    /// Its row in the `nodes` table.
    pub id: String,
}

pub struct Nodes {
    herald: PathBuf,
    tmp: PathBuf,
    pub list: Vec<Node>,
    pub pool: PgPool,
}

impl Nodes {
    pub fn new(herald: PathBuf, tmp: PathBuf, pool: PgPool) -> Nodes {
        Nodes { herald, tmp, list: Vec::new(), pool }
    }

    pub async fn node_ids(&self) -> HashSet<String> {
        sqlx::query_scalar::<_, String>("SELECT id FROM nodes")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// Starts node `i` (a new one when `i == list.len()`, else again on its old port) and
    /// waits until it answers `/readyz` and has registered in the node table.
    pub async fn start(&mut self, i: usize) -> R<()> {
        let port = match self.list.get(i) {
            Some(n) => n.port,
            None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let before = self.node_ids().await;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.tmp.join(format!("node-{i}.log")))?;
        let mut last_err = String::new();
        // The port may still be held for a moment after a SIGKILL: retry the start a few times.
        for _ in 0..5 {
            let mut child = Command::new(&self.herald)
                .arg("serve")
                .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log.try_clone()?)
                .kill_on_drop(true)
                .spawn()?;
            let pid = child.id().ok_or("no pid")?;
            std::fs::write(self.tmp.join(format!("node-{i}.pid")), pid.to_string())?;
            let url = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build()?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut ready = false;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("node {i} exited during start-up: {status}");
                    break;
                }
                if http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !ready {
                let _ = child.start_kill();
                let _ = child.wait().await;
                if last_err.is_empty() {
                    last_err = format!("node {i} not ready in 30 s");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            // Its node id: the row that was not there before it started.
            let mut id = None;
            for _ in 0..100 {
                if let Some(new) = self.node_ids().await.difference(&before).next() {
                    id = Some(new.clone());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let id = id.ok_or_else(|| format!("node {i} never registered in the nodes table"))?;
            let node = Node { port, url, child: Some(child), pid, id };
            if i < self.list.len() {
                self.list[i] = node;
            } else {
                self.list.push(node);
            }
            return Ok(());
        }
        Err(last_err.into())
    }

    /// SIGKILL; returns once the process is gone.
    pub async fn kill(&mut self, i: usize) -> R<()> {
        let mut child = self.list[i].child.take().ok_or("node not running")?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// Whether every node process is still running (none crashed on its own).
    pub fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in self.list.iter_mut().enumerate() {
            if let Some(c) = n.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                out.push(format!("node {i} (pid {}) exited by itself: {status}", n.pid));
            }
        }
        out
    }

    /// Stops every node with SIGTERM (clean shutdown), SIGKILL after 15 s.
    pub async fn stop_all(&mut self) {
        for n in &mut self.list {
            if let Some(mut c) = n.child.take() {
                let _ = Command::new("kill").arg("-TERM").arg(n.pid.to_string()).status().await;
                if tokio::time::timeout(Duration::from_secs(15), c.wait()).await.is_err() {
                    let _ = c.start_kill();
                    let _ = c.wait().await;
                }
            }
        }
    }
}

/// One RSS / CPU sample of one node process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub ns: u64,
    pub node: usize,
    pub pid: u32,
    pub rss_kb: u64,
    pub cpu_secs: f64,
}

/// The node number PostgreSQL's samples carry (its CPU only).
pub const POSTGRES: usize = usize::MAX;

/// CPU seconds of a process and of the children it has waited for (PostgreSQL's postmaster
/// reaps its backends, so their time ends up here once they exit).
fn cpu_with_children(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<f64>() / super::CLK_TCK
}

/// CPU seconds of the postmaster, its waited-for children and its live children.
fn postgres_cpu(postmaster: u32) -> f64 {
    let mut total = cpu_with_children(postmaster);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        if rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
            total += proc_cpu_secs(&pid.to_string());
        }
    }
    total
}

/// Samples every node's VmRSS and CPU time (and PostgreSQL's CPU, when its pid file is given)
/// every `every` until `stop` is set.
pub fn sample_loop(
    pids: Arc<Mutex<Vec<u32>>>,
    pg_pidfile: Option<PathBuf>,
    base: Instant,
    every: Duration,
    out: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let now = base.elapsed().as_nanos() as u64;
            let ps = pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut got = Vec::new();
            for (node, pid) in ps.into_iter().enumerate() {
                let rss_kb = proc_status_kb(&pid.to_string(), "VmRSS:");
                if rss_kb > 0 {
                    got.push(Sample { ns: now, node, pid, rss_kb, cpu_secs: proc_cpu_secs(&pid.to_string()) });
                }
            }
            let postmaster = pg_pidfile
                .as_ref()
                .and_then(|f| std::fs::read_to_string(f).ok())
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
            if let Some(pid) = postmaster {
                got.push(Sample { ns: now, node: POSTGRES, pid, rss_kb: 0, cpu_secs: postgres_cpu(pid) });
            }
            out.lock().unwrap_or_else(|e| e.into_inner()).extend(got);
            tokio::time::sleep(every).await;
        }
    })
}

/// A change of one node's `/readyz` answer: (ns, node, status or 0 for no connection).
pub type ReadyChange = (u64, usize, u16);

/// Polls `/readyz` of every node every 50 ms (all nodes at once) and records each change of
/// its answer.
pub fn readyz_loop(
    urls: Vec<String>,
    base: Instant,
    out: Arc<Mutex<Vec<ReadyChange>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().expect("a reqwest client");
        let mut last: Vec<u16> = vec![200; urls.len()];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let polls = urls.iter().map(|url| {
                let (http, url) = (http.clone(), url.clone());
                async move { http.get(format!("{url}/readyz")).send().await.map_or(0, |r| r.status().as_u16()) }
            });
            let statuses = futures_lite_join(polls.collect()).await;
            for (i, status) in statuses.into_iter().enumerate() {
                if status != last[i] {
                    last[i] = status;
                    out.lock().unwrap_or_else(|e| e.into_inner()).push((base.elapsed().as_nanos() as u64, i, status));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Awaits every future, in order (a tiny join_all over spawned tasks).
async fn futures_lite_join<F: std::future::Future<Output = u16> + Send + 'static>(fs: Vec<F>) -> Vec<u16> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or(0));
    }
    out
}
