//! Firebase Cloud Messaging HTTP v1: `POST {base}/v1/projects/{project}/messages:send`,
//! authorised with an OAuth2 access token obtained from the channel's service account.

mod config;
mod payload;
mod response;
mod token;

#[cfg(all(test, feature = "testing"))]
mod e2e_tests;
#[cfg(test)]
mod tests;

use std::time::SystemTime;

use async_trait::async_trait;
use herald_core::clock::now_ms;
use herald_core::delivery::{Content, Job, Options, Outcome, Provider};
use herald_core::model::SubscriptionKind;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

pub use config::{FCM_URL, GOOGLE_TOKEN_URI};
pub use payload::MAX_PAYLOAD;
#[cfg(feature = "testing")]
pub(crate) use token::AssertionClaims;
pub use token::{GRANT_TYPE, SCOPE};

use crate::http::{self, HttpClients, ProviderSettings};
use config::FcmConfig;
use payload::Delivery;
use token::{AccessToken, AccessTokens};

/// The FCM [`Provider`]. One instance serves every FCM channel: access tokens are cached per
/// service account and connections are pooled per host.
pub struct FcmProvider {
    clients: HttpClients,
    tokens: AccessTokens,
}

impl std::fmt::Debug for FcmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmProvider").finish_non_exhaustive()
    }
}

/// What FCM said to one request.
struct Answer {
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: Vec<u8>,
}

impl FcmProvider {
    /// A provider with its own HTTP clients.
    ///
    /// # Errors
    /// If the TLS backend cannot be initialised.
    pub fn new(settings: &ProviderSettings) -> Result<Self, reqwest::Error> {
        Ok(Self::with_clients(HttpClients::new(settings)?))
    }

    /// A provider sending through `clients`, e.g. shared with the APNs provider.
    pub fn with_clients(clients: HttpClients) -> Self {
        Self { clients, tokens: AccessTokens::default() }
    }

    /// Sends; on a 401 the cached access token is dropped and the send is tried once more with a
    /// new one, since Google may revoke a token before its stated expiry.
    async fn deliver(&self, job: &Job) -> Result<Outcome, Outcome> {
        let config =
            FcmConfig::parse(&job.channel.config).map_err(|reason| Outcome::ChannelError { status: None, reason })?;
        let content = payload::content_message(&job.content, &job.options)
            .map_err(|reason| Outcome::Failed { status: None, reason })?;
        let delivery = Delivery {
            token: &job.target.identifier,
            options: &job.options,
            ttl_secs: job.ttl_remaining(now_ms()),
            expires_at_secs: job.expires_at.div_euclid(1000),
            visible: content.get("notification").is_some(),
        };
        let mut body = payload::request_body(&delivery, &content);
        if let Some(receipt) = &job.receipt {
            // Where the app reads it to report displayed / clicked (FCM data is string-to-string).
            body["message"]["data"]["herald_receipt"] = serde_json::json!(receipt);
        }
        let body = serde_json::to_vec(&body)
            .map_err(|e| Outcome::Failed { status: None, reason: format!("FCM payload: {e}") })?;
        let url = format!("{}/v1/projects/{}/messages:send", config.base_url, config.project_id);
        self.clients.admit(config.token_uri)?;
        self.clients.admit(&url)?;
        let token_client = self.clients.for_url(config.token_uri);

        let token = self.tokens.get(token_client, &config).await?;
        let mut answer = self.post(&url, &token, body.clone()).await?;
        if answer.status == 401 {
            self.tokens.invalidate(&config, &token);
            let token = self.tokens.get(token_client, &config).await?;
            answer = self.post(&url, &token, body).await?;
        }
        Ok(outcome(answer))
    }

    async fn post(&self, url: &str, token: &AccessToken, body: Vec<u8>) -> Result<Answer, Outcome> {
        let request = self
            .clients
            .for_url(url)
            .post(url)
            .header(AUTHORIZATION, token.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let response = request.send().await.map_err(|e| http::transport_failure("FCM", e))?;
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers(), SystemTime::now());
        Ok(Answer { status, retry_after, body: http::read_body(response).await })
    }
}

fn outcome(answer: Answer) -> Outcome {
    if answer.status == 200 {
        return Outcome::Delivered { status: 200, provider_message_id: response::message_name(&answer.body) };
    }
    response::classify(answer.status, &response::parse_error(&answer.body), answer.retry_after)
}

#[async_trait]
impl Provider for FcmProvider {
    fn check_payload(&self, content: &Content, options: &Options, _kind: SubscriptionKind) -> Result<(), String> {
        payload::content_message(content, options).map(drop)
    }

    fn host_key(&self, job: &Job) -> String {
        http::authority(config::base_url(&job.channel.config))
    }

    async fn send(&self, job: &Job) -> Outcome {
        match self.deliver(job).await {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }
}
