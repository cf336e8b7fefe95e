//! After the soak: every delivery of every send in the database against what the sink saw, the
//! HTTP answers, `/readyz`, RSS and the recovery times; a markdown table and the failed checks.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::PgPool;

use super::soak::{Run, key_of};
use super::soak_load::Traffic;
use super::soak_sink::{FaultSink, Key};
use super::{R, pct};

type Row = (i64, String, i64, String, i64, Option<i64>, Option<String>);

const S: f64 = 1e9;

fn secs(ns: u64, from: u64) -> f64 {
    (ns as f64 - from as f64) / S
}

pub struct Report {
    pub md: String,
    pub failed: Vec<String>,
}

impl Report {
    pub fn row(&mut self, what: &str, result: String) {
        self.md.push_str(&format!("| {what} | {result} |\n"));
    }
    pub fn check(&mut self, what: &str, ok: bool, detail: String) {
        let verdict = if ok { "pass" } else { "**FAIL**" };
        self.md.push_str(&format!("| check: {what} | {verdict}: {detail} |\n"));
        if !ok {
            self.failed.push(format!("{what}: {detail}"));
        }
    }
}

/// The first few items of a list, for a report cell.
fn few<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(3).map(|i| format!("{i:?}")).collect();
    let more = if items.len() > 3 { format!(" … ({} in all)", items.len()) } else { String::new() };
    format!("{}{more}", shown.join("; ")).replace('|', "/")
}

fn percentiles(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "none".into();
    }
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} deliveries)",
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 0.999),
        v[v.len() - 1],
        v.len()
    )
}

/// A reason without its variable tail, for grouping.
fn reason_group(r: &str) -> String {
    let limit = r.char_indices().nth(90).map_or(r.len(), |(i, _)| i);
    let cut = r.find('{').unwrap_or(r.len()).min(limit);
    r[..cut].trim_end_matches([' ', ':']).to_string()
}

pub async fn check(run: &Run, traffic: &Traffic, sink: &FaultSink, pool: &PgPool) -> R<(String, Vec<String>)> {
    let mut rep = Report { md: String::new(), failed: Vec::new() };
    let notes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, idempotency_key FROM notifications WHERE account_id = $1")
            .bind(run.account)
            .fetch_all(pool)
            .await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, notification_id, subscription_id, status, attempts, provider_status, provider_reason \
         FROM deliveries WHERE account_id = $1",
    )
    .bind(run.account)
    .fetch_all(pool)
    .await?;
    let send_of: HashMap<String, u32> = notes
        .iter()
        .filter_map(|(id, k)| Some((id.clone(), k.as_deref()?.strip_prefix("soak-")?.parse().ok()?)))
        .collect();
    let subs = traffic.subs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let sub_of: HashMap<i64, u32> = subs.iter().enumerate().filter_map(|(i, s)| Some((s.id?, i as u32))).collect();
    let sends = traffic.sends.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let hits = sink.hits();
    let t = &run.timeline;
    let first_ok = |k: &Key| hits.get(k).and_then(|h| h.iter().find(|h| h.answer.is_created())).map(|h| h.ns);
    let created = |k: &Key| hits.get(k).map_or(0, |h| h.iter().filter(|h| h.answer.is_created()).count());

    // Setup and load.
    let a = &run.args;
    rep.row(
        "setup",
        format!(
            "{} `herald serve` nodes on one PostgreSQL 15 of the soak's own (restarted during the run), Web Push sink \
             with fault injection; {} users, {} subscriptions at start; mix 98 % sends to one user / 1 % subscribe / \
             1 % unsubscribe",
            a.nodes, a.users, run.initial_subs
        ),
    );
    rep.row("calibration", run.capacity_note.clone());
    let soak_secs = secs(run.soak_end_ns, run.soak_start_ns);
    rep.row(
        "load",
        format!(
            "{:.0} % of capacity = {:.0} operations/s, ramped over the first {:.0} s; {} operations in {soak_secs:.0} s \
             ({:.0}/s on average); client behind schedule by ≤ {:.0} ms",
            a.fraction * 100.0,
            run.target,
            (soak_secs / 5.0).min(60.0),
            run.ops,
            run.ops as f64 / soak_secs,
            run.behind_max_ms
        ),
    );
    let events: Vec<String> = t
        .events
        .iter()
        .map(|e| {
            format!(
                "{:.0} s {} ({}, {:.1} s)",
                secs(e.start_ns, run.soak_start_ns),
                e.kind,
                e.note,
                secs(e.end_ns, e.start_ns)
            )
        })
        .collect();
    rep.row("faults (time since the soak started)", events.join("; "));

    // Sends.
    let accepted: Vec<_> = sends.iter().filter(|s| s.outcome == Ok(202)).collect();
    let retried = accepted.iter().filter(|s| s.attempts > 1).count();
    let bad: Vec<_> = sends.iter().filter(|s| s.outcome != Ok(202)).map(|s| (s.index, s.outcome.clone())).collect();
    let (subs_ok, subs_bad) = traffic.subscribes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (unsubs_ok, unsubs_bad) = traffic.unsubscribes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    rep.row(
        "operations",
        format!(
            "{} sends accepted (202; {retried} of them after a retry with the same Idempotency-Key; {} in the calibration), \
             {} not; {subs_ok} subscribes, {unsubs_ok} unsubscribes",
            accepted.len(),
            accepted.iter().filter(|s| s.phase == 0).count(),
            bad.len()
        ),
    );
    rep.check("every operation accepted", bad.is_empty() && subs_bad.is_empty() && unsubs_bad.is_empty(), {
        if bad.is_empty() && subs_bad.is_empty() && unsubs_bad.is_empty() {
            "every send 202, every subscribe 200/201, every unsubscribe 204".into()
        } else {
            format!("sends {}; subscribes {}; unsubscribes {}", few(&bad), few(&subs_bad), few(&unsubs_bad))
        }
    });

    // Deliveries in the database.
    let mut per_note: HashMap<&str, u64> = HashMap::new();
    for r in &rows {
        *per_note.entry(r.1.as_str()).or_insert(0) += 1;
    }
    let mut mismatched = Vec::new();
    for s in &accepted {
        let id = s.id.as_deref().unwrap_or_default();
        let in_db = per_note.get(id).copied().unwrap_or(0);
        if !send_of.contains_key(id) || in_db != s.deliveries {
            mismatched.push((s.index, id.to_string(), s.deliveries, in_db));
        }
    }
    let unacked: Vec<_> = send_of.values().filter(|i| !accepted.iter().any(|s| s.index == **i)).collect();
    rep.check(
        "every accepted send is in the database with the deliveries its 202 counted",
        mismatched.is_empty(),
        format!(
            "{} notifications, {} delivery rows; mismatches: {}; committed without a 202 reaching the client: {}",
            send_of.len(),
            rows.len(),
            if mismatched.is_empty() { "none".into() } else { few(&mismatched) },
            unacked.len()
        ),
    );
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut reasons: BTreeMap<(String, String), u64> = BTreeMap::new();
    let (mut open, mut unexplained, mut unkeyed) = (Vec::new(), Vec::new(), 0);
    let (mut no_arrival, mut arrived_but_failed) = (Vec::new(), 0);
    let mut db_keys = HashSet::new();
    let mut row_of: HashMap<Key, (&str, i64)> = HashMap::new();
    let mut attempts: BTreeMap<i64, u64> = BTreeMap::new();
    for r in &rows {
        *by_status.entry(r.3.as_str()).or_insert(0) += 1;
        *attempts.entry(r.4).or_insert(0) += 1;
        let key = key_of(&send_of, &sub_of, &r.1, r.2);
        if let Some(k) = key {
            db_keys.insert(k);
            row_of.insert(k, (r.3.as_str(), r.4));
        } else {
            unkeyed += 1;
        }
        match r.3.as_str() {
            "delivered" => {
                if key.is_none_or(|k| created(&k) == 0) {
                    no_arrival.push(r.0);
                }
            }
            "failed" | "expired" => {
                match r.6.as_deref().filter(|s| !s.is_empty()) {
                    Some(reason) => *reasons.entry((r.3.clone(), reason_group(reason))).or_insert(0) += 1,
                    None => unexplained.push(r.0),
                }
                if key.is_some_and(|k| created(&k) > 0) {
                    arrived_but_failed += 1;
                }
            }
            _ => open.push((r.0, r.3.clone())),
        }
    }
    rep.row("delivery rows by status", format!("{by_status:?}; attempts per row: {attempts:?}"));
    let reasons_list: Vec<String> = reasons.iter().map(|((s, r), n)| format!("{n} {s}: \"{r}\"")).collect();
    rep.row(
        "failed / expired, by reason",
        if reasons_list.is_empty() { "none".into() } else { reasons_list.join("; ") },
    );
    rep.check(
        "every delivery final (none lost or stuck)",
        open.is_empty(),
        format!("{} not final {}", open.len(), few(&open)),
    );
    rep.check(
        "every failed / expired delivery has its reason",
        unexplained.is_empty(),
        format!("{} without a reason {}", unexplained.len(), few(&unexplained)),
    );
    rep.check(
        "every delivered row reached the sink (a 201)",
        no_arrival.is_empty() && unkeyed == 0,
        format!(
            "{} delivered without a 201 {}; {unkeyed} rows not traceable to a send",
            no_arrival.len(),
            few(&no_arrival)
        ),
    );
    let phantom: Vec<&Key> = hits
        .iter()
        .filter(|(k, h)| h.iter().any(|h| h.answer.is_created()) && !db_keys.contains(k))
        .map(|(k, _)| k)
        .collect();
    rep.check("no arrival without a delivery row", phantom.is_empty(), format!("{} {}", phantom.len(), few(&phantom)));

    // Duplicates: only rows in flight at a kill, or answered while the database was restarting
    // (a node then declared dead has its results dropped).
    let in_flight: HashSet<Key> = t
        .kills
        .iter()
        .flat_map(|k| k.in_flight.iter().filter_map(|(_, n, s)| key_of(&send_of, &sub_of, n, *s)))
        .collect();
    let pg_windows: Vec<(u64, u64)> = t
        .events
        .iter()
        .filter(|e| e.kind.starts_with("PostgreSQL"))
        .map(|e| (e.start_ns.saturating_sub(2_000_000_000), e.end_ns + (a.node_timeout_secs + 5) * 1_000_000_000))
        .collect();
    let (mut dup_kill, mut dup_pg, mut dup_other) = (0, 0, Vec::new());
    let mut extra = 0;
    for k in hits.keys() {
        let n = created(k);
        if n < 2 {
            continue;
        }
        extra += n - 1;
        let first = first_ok(k).unwrap_or(0);
        if in_flight.contains(k) {
            dup_kill += 1;
        } else if pg_windows.iter().any(|(a, b)| (*a..=*b).contains(&first)) {
            dup_pg += 1;
        } else {
            dup_other.push((*k, hits[k].clone()));
        }
    }
    let answers = sink.answers();
    rep.row(
        "sink",
        format!(
            "answers: 201 {} ({} of them slow), 5xx {}, 429 {}, reset {}, hung {}; {} deliveries arrived (201) more than \
             once ({extra} extra 201s); {arrived_but_failed} rows recorded failed/expired although a 201 reached the sink",
            answers[0],
            answers[5],
            answers[1],
            answers[2],
            answers[3],
            answers[4],
            dup_kill + dup_pg + dup_other.len()
        ),
    );
    rep.check(
        "duplicates only for rows in flight at a kill (or answered while the database was restarting or down)",
        dup_other.is_empty(),
        format!(
            "{dup_kill} in flight at a SIGKILL, {dup_pg} answered while PostgreSQL restarted or was down, {} otherwise {}",
            dup_other.len(),
            few(&dup_other)
        ),
    );

    // Latency: 202 → first 201 at the sink, soak sends only.
    let quiet = |ns: u64| {
        !t.events.iter().any(|e| ns + 1_000_000_000 >= e.start_ns && ns <= e.end_ns.max(e.start_ns) + 30_000_000_000)
    };
    let (mut all, mut calm, mut slow, mut late) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let send_by_index: HashMap<u32, &super::soak_load::SendRec> = sends.iter().map(|s| (s.index, s)).collect();
    for k in &db_keys {
        let (Some(s), Some(at)) = (send_by_index.get(&k.0), first_ok(k)) else { continue };
        if s.phase != 1 || s.outcome != Ok(202) {
            continue;
        }
        let ms = (at as f64 - s.accepted_ns as f64) / 1e6;
        all.push(ms);
        slow.push((ms, *k, s.accepted_ns));
        let first_try = hits.get(k).and_then(|h| h.first()).map_or(at, |h| h.ns);
        if first_try > s.accepted_ns + 10_000_000_000 {
            late.push((first_try - s.accepted_ns, *k, s.accepted_ns));
        }
        if quiet(s.accepted_ns) {
            calm.push(ms);
        }
    }
    rep.row("latency 202 → first 201 at the sink, whole soak", percentiles(&mut all));
    rep.row("— sends accepted outside fault windows (no fault from 1 s before to 30 s after)", percentiles(&mut calm));
    // The slowest deliveries and those first tried late, with what the sink saw of them.
    let history = |k: &Key, accepted: u64| -> String {
        let seen: Vec<String> = hits.get(k).map_or(Vec::new(), |h| {
            h.iter().map(|h| format!("{:+.1} s {:?}", secs(h.ns, accepted), h.answer)).collect()
        });
        let (status, attempts) = row_of.get(k).copied().unwrap_or(("?", 0));
        format!(
            "send {} (202 at {:.1} s) to subscription {}: {status} after {attempts} attempts; sink saw [{}]",
            k.0,
            secs(accepted, run.soak_start_ns),
            k.1,
            seen.join(", ")
        )
    };
    slow.sort_by(|a, b| b.0.total_cmp(&a.0));
    let slowest: Vec<String> = slow.iter().take(3).map(|(_, k, a)| history(k, *a)).collect();
    rep.row("— the three slowest", slowest.join("; "));
    late.sort_by_key(|b| std::cmp::Reverse(b.0));
    let late_list: Vec<String> = late.iter().take(3).map(|(_, k, a)| history(k, *a)).collect();
    rep.row(
        "deliveries first tried more than 10 s after their 202",
        format!("{}{}{}", late.len(), if late.is_empty() { "" } else { "; the latest: " }, late_list.join("; ")),
    );

    super::soak_check_http::check(run, traffic, &hits, &send_of, &sub_of, &mut rep);
    Ok((rep.md, rep.failed))
}
