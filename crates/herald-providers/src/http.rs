//! The HTTP client the APNs and FCM providers share, and helpers for reading their answers.
//!
//! Both services speak HTTP/2 and multiplex many requests over one connection, so one pooled
//! client per process is what keeps tens of thousands of deliveries per second cheap. Two
//! clients are kept because HTTP/2 is negotiated differently per scheme: over TLS with ALPN
//! (the real services), over cleartext only with prior knowledge (h2c; the local mocks that
//! tests and benchmarks point channels at through their `endpoint` setting).

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use herald_core::delivery::Outcome;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, ClientBuilder, Response, redirect};

/// Answers larger than this are truncated when read: error bodies are a few hundred bytes, and
/// a misbehaving endpoint must not make a worker buffer megabytes.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Settings shared by the HTTP providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Upper bound on one request, from connecting to the last byte of the answer. A request
    /// that takes longer is reported as a retryable failure.
    pub request_timeout: Duration,
    /// Upper bound on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(10), connect_timeout: Duration::from_secs(5) }
    }
}

/// The pooled clients providers send with: [`HttpClients::for_url`] picks the one that speaks
/// HTTP/2 to a given URL. Cloning is cheap and shares the connection pools.
#[derive(Debug, Clone)]
pub struct HttpClients {
    tls: Client,
    h2c: Client,
}

impl HttpClients {
    /// Builds both clients.
    ///
    /// # Errors
    /// If the TLS backend cannot be initialised (e.g. no usable root certificates).
    pub fn new(settings: &ProviderSettings) -> Result<Self, reqwest::Error> {
        Ok(Self { tls: client_builder(settings, false).build()?, h2c: client_builder(settings, true).build()? })
    }

    /// The client for `url`: cleartext HTTP/2 with prior knowledge for `http://` URLs (only
    /// configured in tests, since channel validation requires `https` in production), TLS with
    /// ALPN otherwise.
    pub fn for_url(&self, url: &str) -> &Client {
        let is_http = url.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        if is_http { &self.h2c } else { &self.tls }
    }
}

/// A client builder with the settings every provider needs. `cleartext_h2` selects HTTP/2 with
/// prior knowledge (h2c), which cannot talk to HTTP/1.1-only servers.
pub fn client_builder(settings: &ProviderSettings, cleartext_h2: bool) -> ClientBuilder {
    let builder = Client::builder()
        // A push service never legitimately redirects; following one would let a configured
        // endpoint bounce requests (with credentials) somewhere else.
        .redirect(redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        // Apple recommends keeping connections open; pings detect dead ones before a send does.
        .http2_keep_alive_interval(Duration::from_secs(60))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .http2_keep_alive_while_idle(true)
        .http2_adaptive_window(true)
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")));
    if cleartext_h2 {
        // h2c targets are local test servers; a proxy from the environment would break them.
        builder.http2_prior_knowledge().no_proxy()
    } else {
        builder
    }
}

/// The `Retry-After` delay of an answer: delay-seconds or an HTTP-date (RFC 9110 section
/// 10.2.3). A date in the past means "now" (zero); an unparsable value is ignored.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body. A body that fails mid-way yields what
/// arrived; callers only use it to explain an error status.
pub(crate) async fn read_body(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    body
}

/// The outcome of a request that got no answer (connect failure, timeout, reset): retryable.
pub(crate) fn transport_failure(provider: &str, error: reqwest::Error) -> Outcome {
    Outcome::Retry { status: None, reason: format!("{provider}: {}", describe(error)), retry_after: None }
}

/// A one-line description of a request error with its causes. The URL is left out: an APNs
/// URL contains the device token, which does not belong in delivery records or logs.
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `host:port` of a base URL, the key per-host concurrency limits are counted under. Falls back
/// to the URL itself when it does not parse, so a broken override still gets its own bucket.
pub(crate) fn authority(base_url: &str) -> String {
    match url::Url::parse(base_url) {
        Ok(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => base_url.to_owned(),
        },
        Err(_) => base_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after(&headers("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:50:07 GMT"), now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:00:00 GMT"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn authority_has_host_and_port() {
        assert_eq!(authority("https://api.push.apple.com"), "api.push.apple.com:443");
        assert_eq!(authority("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(authority("not a url"), "not a url");
    }

    #[test]
    fn clients_are_chosen_by_scheme() {
        let clients = HttpClients::new(&ProviderSettings::default()).unwrap();
        assert!(std::ptr::eq(clients.for_url("http://127.0.0.1:1"), &clients.h2c));
        assert!(std::ptr::eq(clients.for_url("HTTP://127.0.0.1:1"), &clients.h2c));
        assert!(std::ptr::eq(clients.for_url("https://api.push.apple.com"), &clients.tls));
    }
}
