//! Outbound webhooks: Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256>`) for the account's endpoints, and bnotify-style
//! channel callbacks (`Authorization: Basic …`). Both go through the SSRF guard.

use async_trait::async_trait;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::webhooks::{ClaimedHook, HookSender};

use crate::http::{HttpClients, describe, read_body};

/// The prefix of Standard Webhooks secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh signing secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system random source");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` value for a message: `v1,` + base64(HMAC-SHA256(key, "id.ts.body")),
/// where the key is the base64-decoded part of the secret after `whsec_`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| "webhook secret is not base64")?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{msg_id}.{timestamp}.").as_bytes());
    ctx.update(body);
    Ok(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// Sends hooks over the guarded HTTP client.
pub struct WebhookSender {
    clients: HttpClients,
}

impl WebhookSender {
    /// A sender over guarded clients ([`HttpClients::guarded`]).
    pub fn new(clients: HttpClients) -> Self {
        Self { clients }
    }
}

#[async_trait]
impl HookSender for WebhookSender {
    async fn send(&self, hook: &ClaimedHook) -> Result<u16, (Option<u16>, String)> {
        if hook.url.is_empty() {
            return Err((None, "destination no longer exists or is disabled".into()));
        }
        self.clients.admit(&hook.url).map_err(|outcome| (None, format!("{outcome:?}")))?;
        let mut request = self
            .clients
            .general()
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("herald-webhooks/", env!("CARGO_PKG_VERSION")));
        if hook.kind == "webhook" {
            let timestamp = herald_core::clock::now_ms() / 1000;
            let signature =
                sign(&hook.secret, &hook.event_id, timestamp, hook.payload.as_bytes()).map_err(|e| (None, e))?;
            request = request
                .header("webhook-id", &hook.event_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature);
        } else if !hook.secret.is_empty() {
            request = request.header("authorization", format!("Basic {}", hook.secret));
        }
        let response = request.body(hook.payload.clone()).send().await.map_err(|e| (None, describe(e)))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(status);
        }
        let body = read_body(response).await;
        let detail: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        Err((Some(status), format!("{status}: {detail}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_decode_to_32_bytes() {
        let s = generate_secret();
        assert_eq!(STANDARD.decode(s.strip_prefix(SECRET_PREFIX).unwrap()).unwrap().len(), 32);
        assert!(sign("whsec_!!!", "m", 1, b"x").is_err());
    }
}
