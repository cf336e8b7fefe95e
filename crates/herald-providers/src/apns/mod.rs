//! Apple Push Notification service: HTTP/2 requests with token (JWT) authentication.
//!
//! One request per device: `POST {base}/3/device/{token}` with the payload as JSON and the
//! delivery options as `apns-*` headers. The base is Apple's production or sandbox host by
//! the subscription's environment, or the channel's `endpoint` override (local mocks).

mod config;
mod payload;
mod response;
mod token;

#[cfg(all(test, feature = "testing"))]
mod e2e_tests;
#[cfg(test)]
mod tests;

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use herald_core::delivery::{Content, Job, Options, Outcome, Provider};
use herald_core::model::SubscriptionKind;
use reqwest::header::HeaderValue;

pub use config::{PRODUCTION_URL, SANDBOX_URL};
pub use payload::{MAX_COLLAPSE_ID, MAX_PAYLOAD, MAX_VOIP_PAYLOAD};

use crate::http::{self, HttpClients, ProviderSettings};
use config::ApnsConfig;
use payload::HeaderInput;
use token::ProviderTokens;

/// The APNs [`Provider`]. One instance serves every APNs channel: provider tokens are cached per
/// (team id, key id) and connections are pooled per host.
pub struct ApnsProvider {
    clients: HttpClients,
    tokens: ProviderTokens,
}

impl std::fmt::Debug for ApnsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsProvider").finish_non_exhaustive()
    }
}

/// What APNs said to one request.
enum Answer {
    Accepted { apns_id: Option<String> },
    Refused { status: u16, reason: String, retry_after: Option<std::time::Duration> },
}

impl ApnsProvider {
    /// A provider with its own HTTP clients.
    ///
    /// # Errors
    /// If the TLS backend cannot be initialised.
    pub fn new(settings: &ProviderSettings) -> Result<Self, reqwest::Error> {
        Ok(Self::with_clients(HttpClients::new(settings)?))
    }

    /// A provider sending through `clients`, e.g. shared with the FCM provider.
    pub fn with_clients(clients: HttpClients) -> Self {
        Self { clients, tokens: ProviderTokens::default() }
    }

    /// Sends, signing a new provider token and trying once more if Apple says the cached one
    /// expired (it may have been signed by a node whose clock runs ahead).
    async fn deliver(&self, job: &Job) -> Result<Outcome, Outcome> {
        let config = ApnsConfig::parse(&job.channel.config).map_err(channel_error)?;
        let device = &job.target.identifier;
        if device.is_empty() || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Outcome::Failed { status: None, reason: "APNs device token is not hexadecimal".into() });
        }
        let base = config::base_url(&job.channel.config, job.target.environment);
        let url = format!("{base}/3/device/{device}");
        let mut token_refreshed = false;
        loop {
            let authorization = self.tokens.authorization(&config, unix_now()).map_err(channel_error)?;
            match self.post(&url, job, &config, authorization.clone()).await? {
                Answer::Accepted { apns_id } => {
                    let provider_message_id = apns_id.or_else(|| Some(job.message_id.clone()));
                    return Ok(Outcome::Delivered { status: 200, provider_message_id });
                }
                Answer::Refused { status, reason, retry_after } => {
                    if response::blames_token(&reason) {
                        self.tokens.invalidate(&config, &authorization);
                    }
                    if response::is_expired_token(status, &reason) && !token_refreshed {
                        token_refreshed = true;
                        continue;
                    }
                    return Ok(response::classify(status, &reason, retry_after));
                }
            }
        }
    }

    /// One request. `Err` is an outcome decided without an answer (bad message, no connection).
    async fn post(
        &self,
        url: &str,
        job: &Job,
        config: &ApnsConfig<'_>,
        authorization: HeaderValue,
    ) -> Result<Answer, Outcome> {
        let prepared =
            payload::prepare(&job.content, &job.options, job.target.kind, job.receipt.as_deref()).map_err(failed)?;
        let headers = payload::headers(&HeaderInput {
            authorization,
            push_type: prepared.push_type,
            // A device registered with its own bundle id (settings.bundle_id) is pushed to that topic.
            bundle_id: job.target.settings.get("bundle_id").and_then(|b| b.as_str()).unwrap_or(config.bundle_id),
            message_id: &job.message_id,
            options: &job.options,
            expiration: job.expires_at.div_euclid(1000),
        })
        .map_err(failed)?;
        self.clients.admit(url)?;
        let request = self.clients.for_url(url).post(url).headers(headers).body(prepared.body);
        let response = request.send().await.map_err(|e| http::transport_failure("APNs", e))?;
        let status = response.status().as_u16();
        if status == 200 {
            let apns_id = response.headers().get("apns-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(Answer::Accepted { apns_id });
        }
        let retry_after = http::retry_after(response.headers(), SystemTime::now());
        let reason = response::reason(&http::read_body(response).await);
        Ok(Answer::Refused { status, reason, retry_after })
    }
}

#[async_trait]
impl Provider for ApnsProvider {
    fn check_payload(&self, content: &Content, options: &Options, kind: SubscriptionKind) -> Result<(), String> {
        payload::prepare(content, options, kind, Some(payload::RECEIPT_PLACEHOLDER)).map(drop)
    }

    fn host_key(&self, job: &Job) -> String {
        http::authority(config::base_url(&job.channel.config, job.target.environment))
    }

    async fn send(&self, job: &Job) -> Outcome {
        match self.deliver(job).await {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }
}

fn channel_error(reason: String) -> Outcome {
    Outcome::ChannelError { status: None, reason }
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed { status: None, reason }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
