//! The HTTP client the APNs and FCM providers share, and helpers for reading their answers.
//!
//! Both services speak HTTP/2 and multiplex many requests over one connection, so one pooled
//! client per process is what keeps tens of thousands of deliveries per second cheap. Two
//! clients are kept because HTTP/2 is negotiated differently per scheme: over TLS with ALPN
//! (the real services), over cleartext only with prior knowledge (h2c; the local mocks that
//! tests and benchmarks point channels at through their `endpoint` setting).

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use herald_core::delivery::Outcome;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, ClientBuilder, Response, redirect};

use crate::ssrf::OutboundPolicy;

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
#[derive(Clone)]
pub struct HttpClients {
    tls: Client,
    h2c: Client,
    /// The SSRF guard for account-supplied base URLs; `None` only in unit tests.
    policy: Option<Arc<OutboundPolicy>>,
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClients").field("guarded", &self.policy.is_some()).finish_non_exhaustive()
    }
}

/// Resolves names through the SSRF guard, so the address connected to is the one checked.
/// (IP-literal URLs skip resolvers; [`HttpClients::admit`] and the Web Push provider check
/// those before sending.)
pub(crate) struct GuardedResolver(pub(crate) Arc<OutboundPolicy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            // Port 0: the connector applies the URL's port to whatever we return.
            let addr = policy
                .resolve_host(name.as_str(), 0)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(std::iter::once(SocketAddr::new(addr.ip(), 0))) as Addrs)
        })
    }
}

impl HttpClients {
    /// Builds both clients.
    ///
    /// # Errors
    /// If the TLS backend cannot be initialised (e.g. no usable root certificates).
    pub fn new(settings: &ProviderSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            tls: client_builder(settings, false).build()?,
            h2c: client_builder(settings, true).build()?,
            policy: None,
        })
    }

    /// Builds both clients behind the SSRF guard: names resolve only to addresses the policy
    /// allows, and [`HttpClients::admit`] refuses IP literals it does not.
    pub fn guarded(settings: &ProviderSettings, policy: Arc<OutboundPolicy>) -> Result<Self, reqwest::Error> {
        let build = |h2c| client_builder(settings, h2c).dns_resolver(Arc::new(GuardedResolver(policy.clone()))).build();
        Ok(Self { tls: build(false)?, h2c: build(true)?, policy: Some(policy) })
    }

    /// The client for endpoints that may speak HTTP/1.1 (webhook receivers): TLS with ALPN, or
    /// plain HTTP/1.1 for `http://` test endpoints.
    pub fn general(&self) -> &Client {
        &self.tls
    }

    /// Checks an account-supplied URL before a request: no credentials, `http` only to an
    /// address inside the configured networks, and IP literals only where the guard allows.
    /// (Names are checked at resolution.) A refusal is a channel configuration error.
    pub fn admit(&self, url: &str) -> Result<(), Outcome> {
        let Some(policy) = &self.policy else { return Ok(()) };
        let refuse = |why: String| Outcome::ChannelError {
            status: None,
            reason: format!("outbound guard refused the endpoint: {why}"),
        };
        let parsed = url::Url::parse(url).map_err(|e| refuse(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse("credentials in URL".into()));
        }
        let ip: Option<IpAddr> = match parsed.host() {
            Some(url::Host::Ipv4(a)) => Some(a.into()),
            Some(url::Host::Ipv6(a)) => Some(a.into()),
            _ => None,
        };
        let inside = ip.is_some_and(|ip| policy.allowed_networks().iter().any(|n| n.contains(&ip)));
        match (parsed.scheme(), ip) {
            ("https", None) => Ok(()),
            ("https", Some(ip)) if policy.is_allowed_ip(ip) => Ok(()),
            ("http", Some(_)) if inside => Ok(()),
            (scheme, Some(ip)) => Err(refuse(format!("{scheme} to {ip}"))),
            (scheme, None) => Err(refuse(format!("{scheme} to a named host"))),
        }
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
