//! The Web Push provider: RFC 8030 delivery of an RFC 8291-encrypted payload with RFC 8292
//! VAPID, to an endpoint the browser chose — so every request passes the SSRF guard, and the
//! connection goes to the address the guard checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::delivery::{Content, Job, Options, Outcome, Provider};
use herald_core::model::SubscriptionKind;
use reqwest::Client;
use serde_json::{Value, json};

use super::crypto::{self, MAX_PLAINTEXT, UaKeys};
use super::vapid::{VapidCache, VapidKey, audience_origin};
use crate::http::{GuardedResolver, ProviderSettings, client_builder, read_body, retry_after, transport_failure};
use crate::json::merge_patch as merge;
use crate::ssrf::OutboundPolicy;

/// Delivers to browsers' push services.
pub struct WebPushProvider {
    client: Client,
    policy: Arc<OutboundPolicy>,
    /// VAPID signers by channel id, rebuilt when a channel's key changes.
    vapid: Mutex<HashMap<String, (String, Arc<VapidCache>)>>,
}

impl WebPushProvider {
    /// Builds the provider over the outbound policy.
    pub fn new(policy: Arc<OutboundPolicy>, settings: &ProviderSettings) -> Result<Self, reqwest::Error> {
        let client = client_builder(settings, false).dns_resolver(Arc::new(GuardedResolver(policy.clone()))).build()?;
        Ok(Self { client, policy, vapid: Mutex::new(HashMap::new()) })
    }

    fn vapid_for(&self, job: &Job) -> Result<Arc<VapidCache>, String> {
        let config = &job.channel.config;
        let key_b64 = config.get("vapid_private_key").and_then(Value::as_str).ok_or("channel has no VAPID key")?;
        let subject = config.get("subject").and_then(Value::as_str).ok_or("channel has no VAPID subject")?;
        let fingerprint = format!("{key_b64}|{subject}");
        let mut cache = self.vapid.lock().expect("vapid cache lock");
        if let Some((fp, signer)) = cache.get(&job.channel.id)
            && *fp == fingerprint
        {
            return Ok(signer.clone());
        }
        let der = STANDARD.decode(key_b64).map_err(|_| "VAPID key is not base64")?;
        let key = VapidKey::from_pkcs8(&der).map_err(|e| format!("VAPID key: {e}"))?;
        let signer = Arc::new(VapidCache::new(key, subject).map_err(|e| format!("VAPID: {e}"))?);
        cache.insert(job.channel.id.clone(), (fingerprint, signer.clone()));
        Ok(signer)
    }
}

/// The JSON a service worker receives for `content` in Herald's shape, without a receipt: what
/// benchmarks encrypt. Deliveries use [`super::payload::payload`].
pub fn payload(content: &Content, options: &Options) -> Vec<u8> {
    let mut value = serde_json::to_value(content).unwrap_or_else(|_| json!({}));
    if let Some(extra) = &options.web_push {
        merge(&mut value, extra);
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

fn settings_keys(settings: &Value) -> Option<(&str, &str)> {
    Some((settings.get("p256dh")?.as_str()?, settings.get("auth")?.as_str()?))
}

#[async_trait]
impl Provider for WebPushProvider {
    fn check_payload(&self, content: &Content, options: &Options, _kind: SubscriptionKind) -> Result<(), String> {
        let len = super::payload::largest(content, options);
        if len > MAX_PLAINTEXT {
            return Err(format!(
                "Web Push payload is {len} bytes; with encryption framing the limit is 4096 bytes ({MAX_PLAINTEXT} of JSON)"
            ));
        }
        Ok(())
    }

    fn host_key(&self, job: &Job) -> String {
        url::Url::parse(&job.target.identifier)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("webpush:{h}")))
            .unwrap_or_else(|| "webpush:invalid".into())
    }

    async fn send(&self, job: &Job) -> Outcome {
        let failed = |reason: String| Outcome::Failed { status: None, reason };
        let endpoint = job.target.settings.get("endpoint").and_then(Value::as_str).unwrap_or(&job.target.identifier);
        let url = match self.policy.check_url(endpoint) {
            Ok(url) => url,
            Err(e) => return failed(format!("endpoint refused by the outbound guard: {e}")),
        };
        let Some(keys) = settings_keys(&job.target.settings).and_then(|(p, a)| UaKeys::from_base64(p, a).ok()) else {
            return failed("subscription keys are invalid".into());
        };
        let body = match crypto::encrypt(&keys, &super::payload::payload(job)) {
            Ok(body) => body,
            Err(e) => return failed(format!("encryption failed: {e}")),
        };
        let authorization = match self
            .vapid_for(job)
            .and_then(|v| v.authorization(&audience_origin(&url)).map_err(|e| e.to_string()))
        {
            Ok(h) => h,
            Err(reason) => return Outcome::ChannelError { status: None, reason },
        };
        let ttl = job.ttl_remaining(herald_core::clock::now_ms());
        let mut request = self
            .client
            .post(url)
            .header("authorization", authorization)
            .header("content-encoding", crypto::CONTENT_ENCODING)
            .header("content-type", "application/octet-stream")
            .header("ttl", ttl.to_string())
            .header("urgency", job.options.urgency.as_str());
        if let Some(topic) = &job.options.collapse_key {
            request = request.header("topic", topic);
        }
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => return transport_failure("Web Push", e),
        };
        classify(response).await
    }
}

/// Maps a push service's answer (RFC 8030 section 5, RFC 8292 section 4).
async fn classify(response: reqwest::Response) -> Outcome {
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let wait = retry_after(response.headers(), SystemTime::now());
    if (200..300).contains(&status) {
        return Outcome::Delivered { status, provider_message_id: location };
    }
    let body = read_body(response).await;
    let detail = String::from_utf8_lossy(&body).chars().take(200).collect::<String>();
    let reason =
        |what: &str| if detail.is_empty() { format!("{status} {what}") } else { format!("{status} {what}: {detail}") };
    match status {
        404 | 410 => Outcome::Gone { status, reason: reason("subscription gone") },
        401 | 403 => Outcome::ChannelError { status: Some(status), reason: reason("VAPID authorization rejected") },
        413 => Outcome::Failed { status: Some(status), reason: reason("payload too large") },
        429 => Outcome::Retry { status: Some(status), reason: reason("rate limited"), retry_after: wait },
        500..=599 => Outcome::Retry { status: Some(status), reason: reason("push service error"), retry_after: wait },
        _ => Outcome::Failed { status: Some(status), reason: reason("rejected") },
    }
}
