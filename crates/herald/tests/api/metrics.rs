//! Prometheus metrics: `/metrics` to the operator token on the main listener, open on
//! `metrics_listen`; counters move with a delivered and a failed send; labels are templates,
//! never ids.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;
use crate::mock_push::{MockPush, Reply};

/// The value of one series line, 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

async fn scrape(app: &TestApp) -> String {
    let res = app.http.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    res.text().await.unwrap()
}

async fn metrics_follow_sends_and_need_the_operator_token(b: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = TestApp::spawn_with(b, |c| c.metrics_listen = format!("127.0.0.1:{port}")).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let push = MockPush::start().await;
    for (user, name) in [("ok", "a"), ("bad", "b")] {
        let ua = herald_providers::webpush::testing::UaKeyPair::generate();
        let settings = json!({"endpoint": push.endpoint(name), "p256dh": ua.p256dh_b64(), "auth": ua.auth_b64()});
        let (s, _) = app.post(&format!("/v1/users/{user}/subscriptions"), &sk, json!({"settings": settings})).await;
        assert_eq!(s, 201);
    }
    // Without the token: the native 401; with a wrong one too.
    assert_error(&app.call(Method::GET, "/metrics", None, None).await, 401, "unauthenticated");
    assert_error(
        &app.call(Method::GET, "/metrics", Some("wrong-token-wrong-token"), None).await,
        401,
        "unauthenticated",
    );
    let before = scrape(&app).await;
    let delivered = r#"herald_deliveries_total{provider="web_push",outcome="delivered"}"#;
    let failed = r#"herald_deliveries_total{provider="web_push",outcome="failed"}"#;

    let sent = app.send(&sk, json!({"to": {"user": "ok"}, "title": "t"})).await;
    let ok_id = sent["id"].as_str().unwrap().to_string();
    app.wait_done(&sk, &ok_id).await;
    push.script([Reply::status(400)]);
    let sent = app.send(&sk, json!({"to": {"user": "bad"}, "title": "t"})).await;
    let n = app.wait_done(&sk, sent["id"].as_str().unwrap()).await;
    assert_eq!(n["counts"]["failed"], 1, "{n}");

    let after = scrape(&app).await;
    assert_eq!(value(&after, delivered) - value(&before, delivered), 1.0, "{after}");
    assert_eq!(value(&after, failed) - value(&before, failed), 1.0);
    assert!(value(&after, r#"herald_provider_request_duration_seconds_count{provider="web_push"}"#) >= 2.0);
    assert!(value(&after, r#"herald_delivery_latency_seconds_count{provider="web_push"}"#) >= 2.0);
    let sends = r#"herald_http_requests_total{surface="native",route="/v1/notifications",status="202"}"#;
    assert_eq!(value(&after, sends) - value(&before, sends), 2.0);
    assert!(after.contains(r#"route="/v1/notifications/{id}""#), "route templates, not paths");
    assert!(!after.contains(&ok_id), "no ids in labels");
    for series in
        ["herald_queue_depth", "herald_subscriptions", "herald_db_pool_connections", "herald_channels_unhealthy"]
    {
        assert!(after.contains(&format!("# TYPE {series} gauge")), "{series}");
    }
    assert!(after.contains(r#"herald_db_pool_connections{state="idle"}"#), "gauges are filled at start: {after}");

    // The private listener needs no credential.
    let open = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(open.text().await.unwrap().contains(delivered));
}

both_backends!(metrics_follow_sends_and_need_the_operator_token);
