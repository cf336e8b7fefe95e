//! API keys, signing keys, sessions, and client authentication with user JWTs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sign(alg: Algorithm, pem: &str, kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_secret(pem.as_bytes()),
    };
    encode(&header, &claims, &key).unwrap()
}

async fn keys_are_shown_once_and_revocable(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    let (status, key) = app.post("/v1/keys", &sk, json!({"kind": "secret"})).await;
    assert_eq!(status, 201, "{key}");
    let new_sk = key["key"].as_str().unwrap().to_string();
    assert!(new_sk.starts_with("sk_") && new_sk.starts_with(key["prefix"].as_str().unwrap()));
    let (_, list) = app.get("/v1/keys", &sk).await;
    let listed = list["data"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|k| k.get("key").is_none() && k.get("key_hash").is_none()), "{list}");
    assert!(!list.to_string().contains(&new_sk[12..]), "the full key never appears again");
    let stored: i64 =
        app.scalar_i64(&format!("SELECT COUNT(*) FROM api_keys WHERE prefix = '{}'", &new_sk[..11])).await;
    assert_eq!(stored, 1);

    assert_eq!(app.get("/v1/keys", &new_sk).await.0, 200);
    let id = key["id"].as_str().unwrap();
    assert_eq!(app.call(Method::DELETE, &format!("/v1/keys/{id}"), Some(&sk), None).await.0, 204);
    assert_error(&app.get("/v1/keys", &new_sk).await, 401, "unauthenticated");
    assert_error(&app.call(Method::DELETE, &format!("/v1/keys/{id}"), Some(&sk), None).await, 404, "not_found");

    // Channel keys need a channel of this account.
    let channel = app.web_push_channel(&sk).await;
    let (status, ck) = app.post("/v1/keys", &sk, json!({"kind": "channel", "channel_id": channel})).await;
    assert_eq!(status, 201);
    assert!(ck["key"].as_str().unwrap().starts_with("ck_"));
    assert_field(&app.post("/v1/keys", &sk, json!({"kind": "channel"})).await, "channel_id", "required");
    // A public or channel key cannot do backend work.
    assert_error(&app.get("/v1/keys", ck["key"].as_str().unwrap()).await, 403, "forbidden");
}

async fn another_accounts_ids_are_not_found(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk_a, _) = app.account(false).await;
    let (_, sk_b, _) = app.account(false).await;
    let channel = app.web_push_channel(&sk_a).await;
    let (_, sub) = app
        .post(
            "/v1/users/alice/subscriptions",
            &sk_a,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/a")}),
        )
        .await;
    let sub_id = sub["id"].as_i64().unwrap();
    let (_, key) = app.post("/v1/keys", &sk_a, json!({"kind": "public"})).await;
    let before = app.snapshot().await;
    for (method, path) in [
        (Method::GET, format!("/v1/channels/{channel}")),
        (Method::DELETE, format!("/v1/channels/{channel}")),
        (Method::GET, format!("/v1/subscriptions/{sub_id}")),
        (Method::DELETE, format!("/v1/subscriptions/{sub_id}")),
        (Method::PUT, format!("/v1/subscriptions/{sub_id}/topics/news")),
        (Method::GET, "/v1/users/alice".into()),
        (Method::DELETE, "/v1/users/alice".into()),
        (Method::DELETE, format!("/v1/keys/{}", key["id"].as_str().unwrap())),
    ] {
        let got = app.call(method.clone(), &path, Some(&sk_b), None).await;
        assert_error(&got, 404, "not_found");
    }
    assert_error(
        &app.post("/v1/keys", &sk_b, json!({"kind": "channel", "channel_id": channel})).await,
        404,
        "not_found",
    );
    let registered = app
        .post(
            "/v1/users/bob/subscriptions",
            &sk_b,
            json!({"channel_id": channel, "settings": web_push_settings("https://fcm.googleapis.com/fcm/send/b")}),
        )
        .await;
    assert_error(&registered, 404, "not_found");
    assert_eq!(before, app.snapshot().await);
}

async fn sessions_authenticate_their_user(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, _) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let (status, session) = app.post("/v1/sessions", &sk, json!({"user": "alice", "ttl_seconds": 600})).await;
    assert_eq!(status, 201, "{session}");
    let token = session["session_id"].as_str().unwrap().to_string();
    assert!(token.starts_with("ses_") && session["user"] == "alice" && session["expires_at"].is_string());
    let (status, sub) = app
        .post(
            "/v1/me/subscriptions",
            &token,
            json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/s")}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["user"], "alice");
    assert_eq!(app.call(Method::DELETE, &format!("/v1/sessions/{token}"), Some(&sk), None).await.0, 204);
    assert_error(&app.get("/v1/me/subscriptions", &token).await, 401, "unauthenticated");
    assert_error(&app.call(Method::DELETE, &format!("/v1/sessions/{token}"), Some(&sk), None).await, 404, "not_found");
    assert_field(
        &app.post("/v1/sessions", &sk, json!({"user": "alice", "ttl_seconds": 0})).await,
        "ttl_seconds",
        "out_of_range",
    );
    assert_field(&app.post("/v1/sessions", &sk, json!({"user": "u".repeat(256)})).await, "user", "too_long");
}

async fn user_jwts_verify_and_every_pitfall_is_closed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(false).await;
    app.web_push_channel(&sk).await;
    let (status, rsa) = app
        .post("/v1/signing-keys", &sk, json!({"algorithm": "RS256", "public_key_pem": fixture("rsa_public.pem")}))
        .await;
    assert_eq!(status, 201, "{rsa}");
    let (status, ec) = app
        .post("/v1/signing-keys", &sk, json!({"algorithm": "ES256", "public_key_pem": fixture("ec_public.pem")}))
        .await;
    assert_eq!(status, 201, "{ec}");
    let rsa_kid = rsa["id"].as_str().unwrap();
    let ec_kid = ec["id"].as_str().unwrap();
    let body = json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/jwt")});
    let rsa_priv = fixture("rsa_private.pem");
    let claims = |sub: &str| json!({"sub": sub, "exp": now() + 300, "iat": now()});

    let register = |token: String| {
        let app = &app;
        let pk = pk.clone();
        let body = body.clone();
        async move {
            app.call_headers(
                Method::POST,
                "/v1/me/subscriptions",
                &[("authorization", &format!("Bearer {pk}")), ("x-herald-user-token", &token)],
                Some(body),
            )
            .await
        }
    };
    // Valid tokens: RS256 with and without kid, ES256 by kid.
    let (status, sub) = register(sign(Algorithm::RS256, &rsa_priv, Some(rsa_kid), claims("alice"))).await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["user"], "alice");
    assert_eq!(register(sign(Algorithm::RS256, &rsa_priv, None, claims("alice"))).await.0, 200);
    assert_eq!(
        register(sign(Algorithm::ES256, &fixture("ec_private.pem"), Some(ec_kid), claims("alice"))).await.0,
        200
    );

    let before = app.snapshot().await;
    let header = |h: Value| URL_SAFE_NO_PAD.encode(h.to_string());
    let none_token = format!("{}.{}.", header(json!({"alg": "none", "typ": "JWT"})), header(claims("alice")));
    let hs_with_rsa_public = sign(Algorithm::HS256, &fixture("rsa_public.pem"), Some(rsa_kid), claims("alice"));
    let hostile = [
        ("alg none", none_token),
        ("HS256 keyed with the RSA public key", hs_with_rsa_public),
        ("expired", sign(Algorithm::RS256, &rsa_priv, Some(rsa_kid), json!({"sub": "alice", "exp": now() - 120}))),
        (
            "future nbf",
            sign(
                Algorithm::RS256,
                &rsa_priv,
                Some(rsa_kid),
                json!({"sub": "alice", "exp": now() + 300, "nbf": now() + 600}),
            ),
        ),
        ("no exp", sign(Algorithm::RS256, &rsa_priv, Some(rsa_kid), json!({"sub": "alice"}))),
        ("unknown kid", sign(Algorithm::RS256, &rsa_priv, Some("no-such-key"), claims("alice"))),
        ("wrong key", sign(Algorithm::RS256, &fixture("rsa2_private.pem"), Some(rsa_kid), claims("alice"))),
        ("RS256 token under the ES256 kid", sign(Algorithm::RS256, &rsa_priv, Some(ec_kid), claims("alice"))),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, token) in hostile {
        let got = register(token).await;
        assert_eq!(got.0, 401, "{what}: {}", got.1);
        assert_eq!(got.1["error"]["code"], "unauthenticated", "{what}");
    }
    // Without a token, a plain user id is refused outside dev mode.
    let got = app
        .call_headers(
            Method::POST,
            "/v1/me/subscriptions",
            &[("authorization", &format!("Bearer {pk}")), ("x-herald-user-id", "alice")],
            Some(body.clone()),
        )
        .await;
    assert_error(&got, 401, "unauthenticated");
    assert_eq!(before, app.snapshot().await);

    // Deleting the signing key stops its tokens at once.
    assert_eq!(app.call(Method::DELETE, &format!("/v1/signing-keys/{rsa_kid}"), Some(&sk), None).await.0, 204);
    assert_eq!(register(sign(Algorithm::RS256, &rsa_priv, Some(rsa_kid), claims("alice"))).await.0, 401);
    // Private keys and junk are refused as signing keys.
    assert_field(
        &app.post("/v1/signing-keys", &sk, json!({"algorithm": "RS256", "public_key_pem": rsa_priv})).await,
        "public_key_pem",
        "invalid",
    );
    assert_field(
        &app.post("/v1/signing-keys", &sk, json!({"algorithm": "ES256", "public_key_pem": fixture("rsa_public.pem")}))
            .await,
        "public_key_pem",
        "invalid",
    );
    assert_field(
        &app.post("/v1/signing-keys", &sk, json!({"algorithm": "HS256", "public_key_pem": "x"})).await,
        "algorithm",
        "invalid",
    );
}

async fn dev_mode_accepts_plain_user_ids(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, sk, pk) = app.account(true).await;
    app.web_push_channel(&sk).await;
    let headers = [("authorization", format!("Bearer {pk}")), ("x-herald-user-id", "dev-user".into())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, sub) = app
        .call_headers(
            Method::POST,
            "/v1/me/subscriptions",
            &headers,
            Some(json!({"settings": web_push_settings("https://fcm.googleapis.com/fcm/send/dev")})),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["user"], "dev-user");
    // A secret key is not a client credential for /v1/me.
    let got = app
        .call_headers(
            Method::GET,
            "/v1/me/subscriptions",
            &[("authorization", &format!("Bearer {sk}")), ("x-herald-user-id", "dev-user")],
            None,
        )
        .await;
    assert_error(&got, 403, "forbidden");
}

both_backends!(
    keys_are_shown_once_and_revocable,
    another_accounts_ids_are_not_found,
    sessions_authenticate_their_user,
    user_jwts_verify_and_every_pitfall_is_closed,
    dev_mode_accepts_plain_user_ids,
);
