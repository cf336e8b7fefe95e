//! The database out of reach (PostgreSQL behind a TCP proxy the test cuts, as a restart or a
//! network failure would): every request is answered 503 with `Retry-After`, never 500, and
//! `/readyz` fails; once the database is back, requests succeed again without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::*;

/// A TCP proxy to PostgreSQL that can drop every connection and refuse new ones.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is reset at once
                }
                let upstream = upstream.clone();
                links2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Proxy { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn out_of_reach_is_503_with_retry_after_then_recovers() {
    let pg = pg_admin_url();
    let hostport = pg.split('@').nth(1).and_then(|r| r.split('/').next()).unwrap_or("127.0.0.1:5432").to_string();
    let proxy = Proxy::start(hostport.clone()).await;
    let port = proxy.port;
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database_url = c.database_url.replacen(&hostport, &format!("127.0.0.1:{port}"), 1);
    })
    .await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    assert_eq!(app.get("/v1/channels", &sk).await.0, 200);

    proxy.cut();
    let started = Instant::now();
    for (method, path, body) in [
        (Method::GET, "/v1/channels", None),
        (Method::POST, "/v1/notifications", Some(json!({"to": {"user": "alice"}, "title": "t"}))),
        (Method::PUT, "/v1/users/alice", None),
    ] {
        let mut req = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(&sk);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(res.headers()["retry-after"], "1", "{path}");
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unavailable", "{path}: {v}");
    }
    let ready = app.http.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(30), "answers come within the acquire timeout");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/v1/channels", &sk).await.0 != 200 {
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = app.http.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

// PostgreSQL only: a SQLite file cannot go out of reach. In `postgres::` so that the test script
// skips it (and says so) when no PostgreSQL is running.
mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn out_of_reach_is_503_with_retry_after_then_recovers() {
        super::out_of_reach_is_503_with_retry_after_then_recovers().await
    }
}
