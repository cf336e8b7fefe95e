//! The second half of the soak's checks: HTTP answers and `/readyz` against the fault windows,
//! recovery after the PostgreSQL restart and the SIGKILL, RSS growth, CPU, crashes and logs.

use std::collections::{BTreeMap, HashMap};

use super::soak::{Run, key_of};
use super::soak_check::Report;
use super::soak_load::Traffic;
use super::soak_sink::{Hit, Key};
use super::{R, pct};

const SEC: u64 = 1_000_000_000;

fn s(ns: u64, from: u64) -> f64 {
    (ns as f64 - from as f64) / 1e9
}

fn few<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(3).map(|i| format!("{i:?}")).collect();
    let more = if items.len() > 3 { format!(" … ({} in all)", items.len()) } else { String::new() };
    format!("{}{more}", shown.join("; ")).replace('|', "/")
}

pub fn check(
    run: &Run,
    traffic: &Traffic,
    hits: &HashMap<Key, Vec<Hit>>,
    send_of: &HashMap<String, u32>,
    sub_of: &HashMap<i64, u32>,
    rep: &mut Report,
) {
    let t = &run.timeline;
    let log = traffic.client.log.lock().unwrap_or_else(|e| e.into_inner());
    let pg_events: Vec<_> = t.events.iter().filter(|e| e.kind.starts_with("PostgreSQL")).collect();
    let pg: Vec<(u64, u64)> = pg_events.iter().map(|e| (e.start_ns, e.end_ns)).collect();
    // 503s are allowed from the restart until 15 s after PostgreSQL accepts connections again.
    let in_pg = |ns: u64| pg.iter().any(|(a, b)| ns + SEC >= *a && ns <= b + 15 * SEC);
    // A killed node: from the kill until it is ready again.
    let node_down = |node: usize, start: u64, end: u64| {
        t.kills.iter().any(|k| k.node == node && end + SEC >= k.kill_ns && start <= k.ready_ns.unwrap_or(u64::MAX))
    };

    // HTTP answers.
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for ((node, status), n) in &log.by_status {
        let label = if *status == 0 { "no answer".to_string() } else { status.to_string() };
        *by_status.entry(format!("node {node} {label}")).or_insert(0) += n;
    }
    rep.row("HTTP answers (driver requests, by node and status)", format!("{by_status:?}"));
    let (mut bad5xx, mut bad503, mut out503, mut conn, mut other) = (vec![], vec![], vec![], vec![], vec![]);
    for a in &log.trouble {
        let brief = (a.node, a.status, format!("{:.1} s", s(a.end_ns, run.soak_start_ns)), a.what.clone());
        match a.status {
            Some(503) => {
                if !a.retry_after || a.code.as_deref() != Some("unavailable") {
                    bad503.push(brief);
                } else if !in_pg(a.end_ns) {
                    out503.push(brief);
                }
            }
            Some(s) if s >= 500 => bad5xx.push(brief),
            None => {
                if !node_down(a.node, a.start_ns, a.end_ns) {
                    conn.push(brief);
                }
            }
            Some(_) => other.push(brief),
        }
    }
    rep.check("no 5xx other than 503", bad5xx.is_empty(), format!("{} {}", bad5xx.len(), few(&bad5xx)));
    rep.check(
        "every 503 has Retry-After and code `unavailable`",
        bad503.is_empty(),
        format!("{} without {}", bad503.len(), few(&bad503)),
    );
    rep.check(
        "503 only while the database is restarting (until 15 s after it is back)",
        out503.is_empty(),
        format!("{} outside {}", out503.len(), few(&out503)),
    );
    rep.check(
        "no connection errors but to a killed node",
        conn.is_empty(),
        format!("{} unexplained {}", conn.len(), few(&conn)),
    );
    rep.check("no other error answers (4xx)", other.is_empty(), format!("{} {}", other.len(), few(&other)));

    // /readyz.
    let mut ready_bad = Vec::new();
    let mut down_since: HashMap<usize, u64> = HashMap::new();
    for &(ns, node, status) in &run.ready {
        if status == 200 {
            if let Some(from) = down_since.remove(&node)
                && !in_pg(from)
                && !node_down(node, from, ns)
            {
                ready_bad.push((node, format!("{:.1} s", s(from, run.soak_start_ns)), s(ns, from)));
            }
        } else {
            down_since.entry(node).or_insert(ns);
        }
    }
    for (node, from) in down_since {
        ready_bad.push((node, format!("{:.1} s", s(from, run.soak_start_ns)), f64::INFINITY));
    }
    rep.check(
        "/readyz fails only while the database restarts (or its node is dead)",
        ready_bad.is_empty(),
        format!("{} other failures (node, since, for s) {}", ready_bad.len(), few(&ready_bad)),
    );

    // Recovery after each PostgreSQL restart or outage.
    for ev in &pg_events {
        let (start, end) = (&ev.start_ns, &ev.end_ns);
        let outage = ev.kind == "PostgreSQL down";
        let err503: Vec<u64> = log
            .trouble
            .iter()
            .filter(|a| a.status == Some(503) && a.end_ns + SEC >= *start && a.end_ns <= end + 15 * SEC)
            .map(|a| a.end_ns)
            .collect();
        let first_ok = log.ok.iter().filter(|(_, _, st)| st >= end).map(|(e, _, _)| *e).min();
        let mut nodes_down = Vec::new();
        let mut ready_failed_on = 0;
        for node in 0..run.args.nodes {
            let changes: Vec<_> = run
                .ready
                .iter()
                .filter(|c| c.1 == node && c.0 + SEC >= *start && c.0 <= end + 30 * SEC && !node_down(node, c.0, c.0))
                .collect();
            let down = changes.iter().find(|c| c.2 != 200).map(|c| c.0);
            let up = down.and_then(|d| changes.iter().find(|c| c.2 == 200 && c.0 > d).map(|c| c.0));
            if down.is_some() {
                ready_failed_on += 1;
            }
            nodes_down.push(match (down, up) {
                (Some(d), Some(u)) => format!("node {node} not ready {:+.2} s → {:+.2} s", s(d, *start), s(u, *start)),
                (Some(d), None) => format!("node {node} not ready from {:+.2} s on", s(d, *start)),
                _ => format!("node {node} never seen not ready"),
            });
        }
        let what = if outage { "stop" } else { "restart" };
        let label = format!("{} at {:.0} s", ev.kind, s(*start, run.soak_start_ns));
        rep.row(
            &format!("recovery: {label} (times from `pg_ctl {what}`)"),
            format!(
                "{}; pg_ctl returned after {:.2} s; {} answers 503 (first {}, last {}); first success for a request sent \
                 after pg_ctl returned: {}; /readyz: {}",
                ev.note,
                s(*end, *start),
                err503.len(),
                err503.iter().min().map_or("-".into(), |v| format!("{:+.2} s", s(*v, *start))),
                err503.iter().max().map_or("-".into(), |v| format!("{:+.2} s", s(*v, *start))),
                first_ok.map_or("none".into(), |v| format!(
                    "{:+.2} s ({:.2} s after pg_ctl returned)",
                    s(v, *start),
                    s(v, *end)
                )),
                nodes_down.join(", ")
            ),
        );
        // A restart is over in about half a second, which requests mostly wait out on the pool;
        // an outage of several seconds must be visible on every node.
        if outage {
            rep.check(
                &format!("/readyz failed on every node while PostgreSQL was down ({label})"),
                ready_failed_on == run.args.nodes,
                format!("seen not ready on {ready_failed_on} of {} nodes (polled every 50 ms)", run.args.nodes),
            );
            rep.check(
                &format!("requests were answered 503 while PostgreSQL was down ({label})"),
                !err503.is_empty(),
                format!("{} answers 503", err503.len()),
            );
        }
    }

    // Recovery after each SIGKILL.
    for (i, k) in t.kills.iter().enumerate() {
        let keys: Vec<Key> = k.in_flight.iter().filter_map(|(_, n, sub)| key_of(send_of, sub_of, n, *sub)).collect();
        let mut resent: Vec<f64> = keys
            .iter()
            .filter_map(|key| hits.get(key).and_then(|h| h.iter().map(|h| h.ns).filter(|&ns| ns >= k.kill_ns).min()))
            .map(|ns| s(ns, k.kill_ns))
            .collect();
        resent.sort_by(f64::total_cmp);
        let missing = keys.len() - resent.len();
        rep.row(
            &format!("recovery after SIGKILL {} (node {}; times from the kill)", i + 1, k.node),
            format!(
                "{} deliveries leased by the dead node; node declared dead and its leases released after {}; \
                 those deliveries re-sent: first {}, median {}, last {}; {missing} never re-sent; node restarted and ready after {}",
                k.in_flight.len(),
                k.reaped_ns.map_or("(not seen)".into(), |r| format!("{:.2} s", s(r, k.kill_ns))),
                resent.first().map_or("-".into(), |v| format!("{v:.2} s")),
                if resent.is_empty() { "-".into() } else { format!("{:.2} s", pct(&resent, 0.5)) },
                resent.last().map_or("-".into(), |v| format!("{v:.2} s")),
                k.ready_ns.map_or("(never)".into(), |r| format!("{:.2} s", s(r, k.kill_ns))),
            ),
        );
        rep.check(
            &format!("the dead node's deliveries were re-sent (SIGKILL {})", i + 1),
            missing == 0 && k.reaped_ns.is_some() && k.ready_ns.is_some(),
            format!(
                "{missing} of {} not re-sent; reaped: {}; restarted: {}",
                keys.len(),
                k.reaped_ns.is_some(),
                k.ready_ns.is_some()
            ),
        );
    }

    rss(run, rep);
    let c = &run.cpu;
    rep.row(
        "CPU over the soak and drain (2 cores)",
        format!(
            "herald nodes {:.2} cores, PostgreSQL {:.2} cores, harness {:.2} cores, other processes on the shared machine {:.2} cores",
            c.herald / c.wall,
            c.postgres / c.wall,
            c.harness / c.wall,
            (c.machine - c.herald - c.postgres - c.harness).max(0.0) / c.wall
        ),
    );
    rep.check(
        "queue drained after the traffic stopped",
        run.drained.is_some(),
        run.drained.map_or("not within 600 s".into(), |d| format!("in {:.1} s", d.as_secs_f64())),
    );
    let logs = scan_logs(run).unwrap_or_else(|e| (0, 0, vec![format!("reading logs: {e}")]));
    rep.row("node logs", format!("{} ERROR lines, {} WARN lines (all nodes)", logs.0, logs.1));
    rep.check(
        "no node crashed or panicked",
        run.crashed.is_empty() && logs.2.is_empty(),
        format!("exits {}; panics {}", few(&run.crashed), few(&logs.2)),
    );
}

/// RSS of each node process: growth from its minute 2 (minute 2 of the soak for a node that ran
/// throughout) to the end of the traffic; processes that lived less than 4 minutes are reported only.
fn rss(run: &Run, rep: &mut Report) {
    let mut pids: Vec<(usize, u32)> =
        run.samples.iter().filter(|x| x.node != super::soak_nodes::POSTGRES).map(|x| (x.node, x.pid)).collect();
    pids.dedup();
    pids.sort();
    pids.dedup();
    let soak_len = run.soak_end_ns - run.soak_start_ns;
    for (node, pid) in pids {
        let mine: Vec<_> = run.samples.iter().filter(|x| x.pid == pid && x.ns <= run.soak_end_ns).collect();
        let (Some(first), Some(last)) = (mine.first(), mine.last()) else { continue };
        let from = first.ns.max(run.soak_start_ns);
        let lived = last.ns.saturating_sub(from);
        let peak = mine.iter().map(|x| x.rss_kb).max().unwrap_or(0);
        // Minute 2 of a 10-minute run; half-way through a shorter one.
        let offset = (120 * SEC).min(soak_len / 2);
        let base = mine.iter().find(|x| x.ns >= from + offset);
        let mb = |kb: u64| kb as f64 / 1024.0;
        match base {
            Some(b) if lived >= 4 * 60 * SEC || (from == run.soak_start_ns && lived >= soak_len * 9 / 10) => {
                let growth = (last.rss_kb as f64 / b.rss_kb as f64 - 1.0) * 100.0;
                rep.check(
                    &format!("RSS growth under 5 % (node {node}, pid {pid})"),
                    growth < 5.0,
                    format!(
                        "{:.1} MB at {:.0} s → {:.1} MB at {:.0} s ({growth:+.1} %), peak {:.1} MB",
                        mb(b.rss_kb),
                        s(b.ns, run.soak_start_ns),
                        mb(last.rss_kb),
                        s(last.ns, run.soak_start_ns),
                        mb(peak)
                    ),
                );
            }
            _ => rep.row(
                &format!("RSS (node {node}, pid {pid}; lived {:.0} s of the soak, not checked)", lived as f64 / 1e9),
                format!("{:.1} MB → {:.1} MB, peak {:.1} MB", mb(first.rss_kb), mb(last.rss_kb), mb(peak)),
            ),
        }
    }
}

/// (ERROR lines, WARN lines, panics) over the node logs.
fn scan_logs(run: &Run) -> R<(u64, u64, Vec<String>)> {
    let (mut errors, mut warns, mut panics) = (0, 0, Vec::new());
    for i in 0..run.args.nodes {
        let text = std::fs::read_to_string(run.args.tmp.join(format!("node-{i}.log")))?;
        for line in text.lines() {
            // Text logs colour the level (`\x1b[31mERROR\x1b[0m`), so no spaces around it.
            if line.contains("ERROR") {
                errors += 1;
            } else if line.contains("WARN") {
                warns += 1;
            }
            if line.contains("panicked") {
                panics.push(format!("node {i}: {line}"));
            }
        }
    }
    Ok((errors, warns, panics))
}
