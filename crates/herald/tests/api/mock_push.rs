//! A mock Web Push service on 127.0.0.1:0: records every request and answers from a script
//! (status, headers, delay), defaulting to `201 Created`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

#[derive(Default)]
struct Inner {
    in_flight: usize,
    max_in_flight: usize,
    received: Vec<Received>,
    script: VecDeque<Reply>,
    /// Answer used when the script is empty (`None`: 201).
    fallback: Option<Reply>,
}

/// The running mock.
#[derive(Clone)]
pub struct MockPush {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl MockPush {
    pub async fn start() -> MockPush {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockPush { base, inner }
    }

    /// An endpoint URL on this mock.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/push/{name}", self.base)
    }

    /// Queues answers for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// The answer once the script runs out.
    pub fn fallback(&self, reply: Reply) {
        self.inner.lock().unwrap().fallback = Some(reply);
    }

    /// The most requests this mock was answering at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut i = inner.lock().unwrap();
        i.received.push(Received { path: uri.path().to_string(), headers, body: body.to_vec(), at: Instant::now() });
        i.in_flight += 1;
        i.max_in_flight = i.max_in_flight.max(i.in_flight);
        i.script.pop_front().or_else(|| i.fallback.clone()).unwrap_or_else(|| Reply::status(201))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    inner.lock().unwrap().in_flight -= 1;
    let mut res = StatusCode::from_u16(reply.status).unwrap().into_response();
    for (k, v) in reply.headers {
        res.headers_mut().insert(k, v.parse().unwrap());
    }
    res
}
