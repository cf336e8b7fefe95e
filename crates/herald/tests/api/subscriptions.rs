//! The subscription registry: upsert, the device-ownership rule, topics, users, lists, `me`.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::channels::{apns_config, fcm_config};
use crate::helpers::*;

async fn upsert_updates_and_reactivates(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let endpoint = "https://fcm.googleapis.com/fcm/send/upsert";
    let (status, first) = app
        .post(
            "/v1/users/alice/subscriptions",
            &sk,
            json!({"settings": web_push_settings(endpoint), "topics": ["news"]}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["identifier"], endpoint);
    assert_eq!(first["status"], "active");
    assert_eq!(first["topics"], json!(["news"]));
    let id = first["id"].as_i64().unwrap();
    let (status, _) = app
        .call(Method::PATCH, &format!("/v1/subscriptions/{id}"), Some(&sk), Some(json!({"status": "inactive"})))
        .await;
    assert_eq!(status, 200);

    // Browser shape this time, new auth secret: same row, updated, reactivated.
    let new_auth = "AAAAAAAAAAAAAAAAAAAAAA";
    let (status, again) = app
        .post(
            "/v1/users/alice/subscriptions",
            &sk,
            json!({"settings": {"endpoint": endpoint, "keys": {"p256dh": P256DH, "auth": new_auth}}}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], id);
    assert!(again["settings"].get("auth").is_none(), "never shown: {again}");
    let stored: String = match &app.db {
        DbConn::Sqlite(p) => sqlx::query_scalar("SELECT settings FROM subscriptions").fetch_one(p).await.unwrap(),
        DbConn::Postgres(p) => sqlx::query_scalar("SELECT settings FROM subscriptions").fetch_one(p).await.unwrap(),
    };
    assert!(stored.contains(new_auth), "the new secret is stored: {stored}");
    assert_eq!(again["status"], "active");
    assert!(again["inactive_reason"].is_null());
    assert!(again["last_seen_at"].as_str() >= first["last_seen_at"].as_str());
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await, 1);
}

async fn a_device_belongs_to_its_last_registrant(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let body = json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/shared")});
    let (_, alice) = app.post("/v1/users/alice/subscriptions", &sk, body.clone()).await;
    let (status, bob) = app.post("/v1/users/bob/subscriptions", &sk, body.clone()).await;
    assert_eq!(status, 201);
    let (_, alice) = app.get(&format!("/v1/subscriptions/{}", alice["id"]), &sk).await;
    assert_eq!((alice["status"].as_str(), alice["inactive_reason"].as_str()), (Some("inactive"), Some("moved")));
    assert_eq!(bob["status"], "active");
    // Alice registers again: hers reactivates, Bob's moves.
    let (status, _) = app.post("/v1/users/alice/subscriptions", &sk, body).await;
    assert_eq!(status, 200);
    let (_, bob) = app.get(&format!("/v1/subscriptions/{}", bob["id"]), &sk).await;
    assert_eq!(bob["inactive_reason"], "moved");
}

async fn device_tokens_pick_their_channel(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let (_, apns) =
        app.post("/v1/channels", &sk, json!({"name": "ios", "type": "apns", "config": apns_config()})).await;
    let (_, fcm) =
        app.post("/v1/channels", &sk, json!({"name": "android", "type": "fcm", "config": fcm_config()})).await;
    let token = "ab".repeat(32);
    let (status, ios) =
        app.post("/v1/users/u/subscriptions", &sk, json!({"settings": {"token": token}, "kind": "voip"})).await;
    assert_eq!(status, 201, "{ios}");
    assert_eq!(
        (ios["channel_id"].clone(), ios["kind"].as_str(), ios["environment"].as_str()),
        (apns["id"].clone(), Some("voip"), Some("sandbox"))
    );
    let (status, android) =
        app.post("/v1/users/u/subscriptions", &sk, json!({"settings": {"token": "fcm-token:APA91b"}})).await;
    assert_eq!(status, 201, "{android}");
    assert_eq!(android["channel_id"], fcm["id"]);
    assert_field(
        &app.post(
            "/v1/users/u/subscriptions",
            &sk,
            json!({"channel_id": fcm["id"], "settings": {"token": "x"}, "kind": "voip"}),
        )
        .await,
        "kind",
        "invalid",
    );
    // No web_push channel yet.
    assert_field(
        &app.post(
            "/v1/users/u/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/n")}),
        )
        .await,
        "channel_id",
        "required",
    );
}

async fn topics_users_and_lists(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let channel = app.web_push_channel(&sk).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, s) = app
            .post(
                "/v1/users/alice/subscriptions",
                &sk,
                json!({"settings": web_push_settings(&format!("https://fcm.googleapis.com/fcm/send/{i}"))}),
            )
            .await;
        ids.push(s["id"].as_i64().unwrap());
    }
    let (status, s) =
        app.call(Method::PUT, &format!("/v1/subscriptions/{}/topics/chat:42", ids[0]), Some(&sk), None).await;
    assert_eq!((status.as_u16(), s["topics"].clone()), (200, json!(["chat:42"])));
    app.call(Method::PUT, &format!("/v1/subscriptions/{}/topics/chat:42", ids[1]), Some(&sk), None).await;
    app.call(Method::PUT, &format!("/v1/subscriptions/{}/topics/chat:42", ids[1]), Some(&sk), None).await;
    let (_, topic) = app.get("/v1/topics/chat:42/subscriptions", &sk).await;
    let listed: Vec<i64> = topic["data"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, vec![ids[0], ids[1]]);
    let (_, s) =
        app.call(Method::DELETE, &format!("/v1/subscriptions/{}/topics/chat:42", ids[0]), Some(&sk), None).await;
    assert_eq!(s["topics"], json!([]));

    // Pagination walks every row once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = app.get(&format!("/v1/users/alice/subscriptions?limit=2&cursor={cursor}"), &sk).await;
        seen.extend(page["data"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    app.call(
        Method::PATCH,
        &format!("/v1/subscriptions/{}", ids[4]),
        Some(&sk),
        Some(json!({"muted": true, "status": "inactive"})),
    )
    .await;
    let (_, inactive) = app.get("/v1/users/alice/subscriptions?status=inactive", &sk).await;
    assert_eq!(inactive["data"].as_array().unwrap().len(), 1);
    assert_eq!(inactive["data"][0]["muted"], true);
    let (_, by_channel) = app.get(&format!("/v1/users/alice/subscriptions?channel_id={channel}"), &sk).await;
    assert_eq!(by_channel["data"].as_array().unwrap().len(), 5);

    // Users: upsert with properties, then erasure takes subscriptions and sessions along.
    let (status, user) =
        app.call(Method::PUT, "/v1/users/carol", Some(&sk), Some(json!({"properties": {"plan": "pro"}}))).await;
    assert_eq!((status.as_u16(), user["id"].as_str()), (201, Some("carol")));
    let (status, user) =
        app.call(Method::PUT, "/v1/users/carol", Some(&sk), Some(json!({"properties": {"plan": "free"}}))).await;
    assert_eq!((status.as_u16(), user["properties"]["plan"].as_str()), (200, Some("free")));
    let (_, session) = app.post("/v1/sessions", &sk, json!({"user": "alice"})).await;
    assert_eq!(app.call(Method::DELETE, "/v1/users/alice", Some(&sk), None).await.0, 204);
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await, 0);
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM subscription_topics").await, 0);
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM sessions").await, 0);
    assert_error(
        &app.get("/v1/me/subscriptions", session["session_id"].as_str().unwrap()).await,
        401,
        "unauthenticated",
    );
    assert_error(&app.get("/v1/users/alice", &sk).await, 404, "not_found");
}

async fn clients_see_only_their_own(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let (_, bob_sub) = app
        .post(
            "/v1/users/bob/subscriptions",
            &sk,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/bob")}),
        )
        .await;
    let (_, session) = app.post("/v1/sessions", &sk, json!({"user": "alice"})).await;
    let alice = session["session_id"].as_str().unwrap();
    let (_, mine) = app
        .post(
            "/v1/me/subscriptions",
            alice,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/alice")}),
        )
        .await;
    let (_, list) = app.get("/v1/me/subscriptions", alice).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], mine["id"]);
    let before = app.snapshot().await;
    let bob_id = bob_sub["id"].as_i64().unwrap();
    assert_error(&app.get(&format!("/v1/me/subscriptions/{bob_id}"), alice).await, 404, "not_found");
    assert_error(
        &app.call(Method::PATCH, &format!("/v1/me/subscriptions/{bob_id}"), Some(alice), Some(json!({"muted": true})))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/v1/me/subscriptions/{bob_id}"), Some(alice), None).await,
        404,
        "not_found",
    );
    assert_error(
        &app.call(Method::PUT, &format!("/v1/me/subscriptions/{bob_id}/topics/x"), Some(alice), None).await,
        404,
        "not_found",
    );
    assert_eq!(before, app.snapshot().await);
    let (status, muted) = app
        .call(Method::PATCH, &format!("/v1/me/subscriptions/{}", mine["id"]), Some(alice), Some(json!({"muted": true})))
        .await;
    assert_eq!((status.as_u16(), muted["muted"].as_bool()), (200, Some(true)));
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/me/subscriptions/{}", mine["id"]), Some(alice), None).await.0,
        204
    );
}

async fn fifty_parallel_upserts_leave_one_row(b: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(b).await);
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let body = json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/race")});
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (app, sk, body) = (app.clone(), sk.clone(), body.clone());
            tokio::spawn(async move { app.post("/v1/users/racer/subscriptions", &sk, body).await })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert!(results.iter().all(|r| r.0 == 201 || r.0 == 200), "{:?}", results.iter().map(|r| &r.1).collect::<Vec<_>>());
    assert_eq!(results.iter().filter(|r| r.0 == 201).count(), 1);
    let ids: std::collections::HashSet<i64> = results.iter().map(|r| r.1["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM subscriptions").await, 1);
    assert_eq!(app.scalar_i64("SELECT COUNT(*) FROM users").await, 1);
}

both_backends!(
    upsert_updates_and_reactivates,
    a_device_belongs_to_its_last_registrant,
    device_tokens_pick_their_channel,
    topics_users_and_lists,
    clients_see_only_their_own,
    fifty_parallel_upserts_leave_one_row,
);
