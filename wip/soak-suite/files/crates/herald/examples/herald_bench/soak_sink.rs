//! The soak's push service: a Web Push sink (HTTP/1.1, what Herald speaks to `http://`
//! endpoints) that can misbehave on command and remembers every request per delivery.
//!
//! A delivery is identified without decrypting anything: the endpoint path `/soak/<sub>` names
//! the subscription and the `Topic` header (the send's `collapse_key`, `s<i>`) names the send.
//! Only a `201` counts as a delivery; a fault never answers `201` (a slow answer is a `201` that
//! takes a while: it counts when the request is read, as a push service would deliver it even if
//! the sender died before the answer), so a second `201` for the same (send, subscription) is a
//! duplicate Herald sent, never one the sink provoked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{R, content_length, find_head_end, request_path, topic_marker};

/// What the sink does to a share of the requests while a fault is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// 500 / 502 / 503 (with `Retry-After: 1`) / 504, in turn.
    ServerErrors = 1,
    /// 429 with `Retry-After: 1..=3`.
    RateLimited = 2,
    /// The connection is reset (RST) after the request was read, without an answer.
    Reset = 3,
    /// No answer for `hold`, then the connection is closed: Herald's request timeout fires.
    Hang = 4,
    /// `201`, but only after `slow`: sends stay in flight (a node killed meanwhile never learns
    /// the push service took them).
    Slow = 5,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::ServerErrors,
            2 => Fault::RateLimited,
            3 => Fault::Reset,
            4 => Fault::Hang,
            5 => Fault::Slow,
            _ => Fault::None,
        }
    }
}

/// What the sink answered one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Created,
    /// `201` after `slow`.
    SlowCreated,
    ServerError,
    RateLimited,
    Reset,
    Hang,
}

impl Answer {
    /// A `201`: the push service took the message.
    pub fn is_created(self) -> bool {
        matches!(self, Answer::Created | Answer::SlowCreated)
    }
}

/// One request for a delivery: when it was complete (ns since `base`) and what it got.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub ns: u64,
    pub answer: Answer,
}

/// (send index, subscription index).
pub type Key = (u32, u32);

pub struct FaultSink {
    pub addr: SocketAddr,
    pub base: Instant,
    fault: AtomicU8,
    /// Share of requests the fault applies to, in percent.
    percent: AtomicU32,
    /// How long a hung request is held before its connection is closed.
    hold: Duration,
    /// How long a slow answer takes.
    slow: Duration,
    seq: AtomicU64,
    hits: Mutex<HashMap<Key, Vec<Hit>>>,
    /// Requests without a soak marker (answered 201).
    pub unmarked: AtomicU64,
    /// Answers by kind: created, 5xx, 429, reset, hang, slow 201.
    answers: [AtomicU64; 6],
}

impl FaultSink {
    pub async fn start(base: Instant, hold: Duration, slow: Duration) -> R<Arc<FaultSink>> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let sink = Arc::new(FaultSink {
            addr: listener.local_addr()?,
            base,
            fault: AtomicU8::new(Fault::None as u8),
            percent: AtomicU32::new(0),
            hold,
            slow,
            seq: AtomicU64::new(0),
            hits: Mutex::new(HashMap::new()),
            unmarked: AtomicU64::new(0),
            answers: Default::default(),
        });
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(conn(stream, s.clone()));
            }
        });
        Ok(sink)
    }

    /// The endpoint of subscription `sub`.
    pub fn endpoint(&self, sub: u32) -> String {
        format!("http://{}/soak/{sub}", self.addr)
    }

    /// Turns a fault on for `percent` % of the requests (or off with `Fault::None`).
    pub fn set_fault(&self, fault: Fault, percent: u32) {
        self.percent.store(percent, Ordering::Relaxed);
        self.fault.store(fault as u8, Ordering::Relaxed);
    }

    /// Answers so far, by kind: created (with slow ones), 5xx, 429, reset, hang, slow 201.
    pub fn answers(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.answers[i].load(Ordering::Relaxed))
    }

    /// Requests answered 201 so far (marked or not).
    pub fn created(&self) -> u64 {
        self.answers[0].load(Ordering::Relaxed)
    }

    /// Every marked request so far, per delivery.
    pub fn hits(&self) -> HashMap<Key, Vec<Hit>> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A uniform number in 0..100 (splitmix64 over a counter; the harness is one thread).
    fn roll(&self) -> u32 {
        let mut z = self.seq.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % 100) as u32
    }

    fn decide(&self) -> (Answer, u32) {
        let fault = Fault::from_u8(self.fault.load(Ordering::Relaxed));
        let roll = self.roll();
        if fault == Fault::None || roll >= self.percent.load(Ordering::Relaxed) {
            return (Answer::Created, roll);
        }
        let answer = match fault {
            Fault::ServerErrors => Answer::ServerError,
            Fault::RateLimited => Answer::RateLimited,
            Fault::Reset => Answer::Reset,
            Fault::Hang => Answer::Hang,
            Fault::Slow => Answer::SlowCreated,
            Fault::None => Answer::Created,
        };
        (answer, roll)
    }

    fn record(&self, path: &[u8], marker: Option<usize>, answer: Answer) {
        if answer == Answer::SlowCreated {
            self.answers[5].fetch_add(1, Ordering::Relaxed);
        }
        let idx = match answer {
            Answer::Created | Answer::SlowCreated => 0,
            Answer::ServerError => 1,
            Answer::RateLimited => 2,
            Answer::Reset => 3,
            Answer::Hang => 4,
        };
        self.answers[idx].fetch_add(1, Ordering::Relaxed);
        let sub = path.strip_prefix(b"/soak/").and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse().ok());
        match (marker, sub) {
            (Some(send), Some(sub)) => {
                let hit = Hit { ns: self.base.elapsed().as_nanos() as u64, answer };
                let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
                hits.entry((send as u32, sub)).or_default().push(hit);
            }
            _ => {
                self.unmarked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn reply(status: u16, reason: &str, retry_after: Option<u32>) -> Vec<u8> {
    let body = format!("{{\"reason\":\"soak fault: {status} {reason}\"}}");
    let ra = retry_after.map_or(String::new(), |s| format!("retry-after: {s}\r\n"));
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{ra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn conn(mut stream: TcpStream, sink: Arc<FaultSink>) {
    const CREATED: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    loop {
        let mut consumed = 0;
        // Set when a fault ends this connection after the answers already queued are written.
        let mut end: Option<Answer> = None;
        while let Some(head_end) = find_head_end(&buf[consumed..]) {
            let head = &buf[consumed..consumed + head_end];
            let total = head_end + 4 + content_length(head);
            if buf.len() - consumed < total {
                break;
            }
            let (answer, roll) = sink.decide();
            sink.record(request_path(head), topic_marker(head), answer);
            consumed += total;
            match answer {
                Answer::Created => out.extend_from_slice(CREATED),
                Answer::ServerError => out.extend_from_slice(&match roll % 4 {
                    0 => reply(500, "Internal Server Error", None),
                    1 => reply(502, "Bad Gateway", None),
                    2 => reply(503, "Service Unavailable", Some(1)),
                    _ => reply(504, "Gateway Timeout", None),
                }),
                Answer::RateLimited => out.extend_from_slice(&reply(429, "Too Many Requests", Some(1 + roll % 3))),
                Answer::Reset | Answer::Hang | Answer::SlowCreated => {
                    end = Some(answer);
                    break;
                }
            }
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
        match end {
            Some(Answer::Reset) => {
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = stream.set_zero_linger();
                return;
            }
            Some(Answer::SlowCreated) => {
                tokio::time::sleep(sink.slow).await;
                if stream.write_all(CREATED).await.is_err() {
                    return;
                }
            }
            Some(_) => {
                tokio::time::sleep(sink.hold).await;
                return;
            }
            None => {}
        }
        buf.reserve(8192);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
