//! Outbound SSRF guard (DESIGN.md section 5).
//!
//! Web Push endpoints and webhook URLs are supplied by callers, so without a
//! guard Herald could be made to send requests to its own network (cloud
//! metadata at 169.254.169.254, databases, admin ports). Every outbound URL is
//! therefore checked twice:
//!
//! 1. [`OutboundPolicy::check_url`] when the URL is registered: scheme, no
//!    credentials, allow-listed host name, or a global IP literal.
//! 2. [`OutboundPolicy::resolve`] right before connecting: DNS is resolved
//!    once, non-global addresses are skipped, and the caller connects to
//!    exactly the address returned, so DNS rebinding between check and
//!    connect cannot redirect the request.
//!
//! Loopback and private targets are only reachable through explicitly
//! configured `allowed_networks` (`HERALD_OUTBOUND_ALLOW`), meant for tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

pub use ipnet::IpNet;
use url::{Host, Url};

/// Upper bound on one DNS resolution, so a hung resolver cannot stall a worker.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The browsers' push services (the default allow-list). `*.` entries match
/// proper subdomains only, never the bare suffix or look-alikes such as
/// `evilpush.apple.com`.
pub const DEFAULT_PUSH_HOSTS: &[&str] = &[
    // Chrome, Edge (Chromium), Opera, Samsung Internet.
    "fcm.googleapis.com",
    // Legacy GCM endpoints still found in old Chrome subscriptions.
    "android.googleapis.com",
    // Firefox (autopush).
    "push.services.mozilla.com",
    "updates.push.services.mozilla.com",
    "*.push.services.mozilla.com",
    // Legacy Edge / Windows (WNS), which uses many regional host names.
    "*.notify.windows.com",
    // Safari (macOS, iOS 16.4+).
    "web.push.apple.com",
    "*.push.apple.com",
];

/// Why an outbound URL or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// The URL does not parse.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The URL carries a username or password.
    #[error("URL must not contain credentials")]
    UserInfo,
    /// The scheme is not `https` (or `http` to an allowed network).
    #[error("scheme {0:?} is not allowed")]
    Scheme(String),
    /// The URL has no host.
    #[error("URL has no host")]
    MissingHost,
    /// The host name is not on the allow-list.
    #[error("host {0:?} is not on the outbound allow-list")]
    HostNotAllowed(String),
    /// An IP literal host is not a global address nor in an allowed network.
    #[error("address {0} is not a public address")]
    AddressNotAllowed(IpAddr),
    /// DNS resolution failed or timed out.
    #[error("could not resolve {host:?}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Resolver error or timeout.
        reason: String,
    },
    /// Every resolved address was refused.
    #[error("{0:?} resolves to no allowed address")]
    NoAllowedAddress(String),
    /// An entry of a network list is not a CIDR or IP address.
    #[error("invalid network {0:?}")]
    InvalidNetwork(String),
}

/// Which hosts and networks Herald may send requests to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Lower-case host names, exact or `*.suffix`.
    allowed_hosts: Vec<String>,
    /// Networks reachable even though not global, and over plain `http`.
    allowed_networks: Vec<IpNet>,
}

impl OutboundPolicy {
    /// Creates a policy. Host patterns are an exact name or `*.suffix`
    /// (subdomains only); they are lower-cased and a trailing dot is dropped.
    #[must_use]
    pub fn new(allowed_hosts: Vec<String>, allowed_networks: Vec<IpNet>) -> Self {
        let allowed_hosts = allowed_hosts.iter().map(|h| normalise_host(h)).collect();
        Self { allowed_hosts, allowed_networks }
    }

    /// The default policy: [`DEFAULT_PUSH_HOSTS`] and no extra networks.
    #[must_use]
    pub fn default_push_hosts() -> Self {
        let hosts = DEFAULT_PUSH_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        Self::new(hosts, Vec::new())
    }

    /// Replaces the allowed networks (e.g. from `HERALD_OUTBOUND_ALLOW`).
    #[must_use]
    pub fn with_allowed_networks(mut self, allowed_networks: Vec<IpNet>) -> Self {
        self.allowed_networks = allowed_networks;
        self
    }

    /// The normalised host patterns.
    #[must_use]
    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    /// The extra allowed networks.
    #[must_use]
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed_networks
    }

    /// Whether a connection to `ip` is allowed: it is global, or inside an
    /// allowed network.
    #[must_use]
    pub fn is_allowed_ip(&self, ip: IpAddr) -> bool {
        is_global(ip) || self.in_allowed_networks(ip)
    }

    fn in_allowed_networks(&self, ip: IpAddr) -> bool {
        self.allowed_networks.iter().any(|net| net.contains(&ip))
    }

    /// Static check of a URL, used when a subscription or webhook is
    /// registered. Returns the parsed (WHATWG-normalised) URL.
    ///
    /// Rules: no userinfo; an IP-literal host must be global or inside an
    /// allowed network, and may use `http` only in the latter case; a DNS
    /// name must use `https` and match the host allow-list, except that
    /// `localhost` is accepted when 127.0.0.1 is inside an allowed network.
    ///
    /// # Errors
    /// The [`SsrfError`] naming the rule that failed.
    pub fn check_url(&self, url: &str) -> Result<Url, SsrfError> {
        // WHATWG parsing turns `2130706433`, `0177.0.0.1`, `0x7f.1` into
        // 127.0.0.1, so obfuscated IPv4 forms arrive here as IP literals.
        let parsed = Url::parse(url).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
        self.check_parsed_url(&parsed)?;
        Ok(parsed)
    }

    /// [`OutboundPolicy::check_url`] for an already parsed URL.
    ///
    /// # Errors
    /// The [`SsrfError`] naming the rule that failed.
    pub fn check_parsed_url(&self, url: &Url) -> Result<(), SsrfError> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::UserInfo);
        }
        match url.host() {
            None => Err(SsrfError::MissingHost),
            Some(Host::Ipv4(ip)) => self.check_ip_host(url, IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip_host(url, IpAddr::V6(ip)),
            Some(Host::Domain(name)) => self.check_domain_host(url, name),
        }
    }

    fn check_ip_host(&self, url: &Url, ip: IpAddr) -> Result<(), SsrfError> {
        let in_networks = self.in_allowed_networks(ip);
        if !in_networks && !is_global(ip) {
            return Err(SsrfError::AddressNotAllowed(ip));
        }
        match url.scheme() {
            "https" => Ok(()),
            // Plain http only for explicitly configured (test) networks.
            "http" if in_networks => Ok(()),
            other => Err(SsrfError::Scheme(other.to_owned())),
        }
    }

    fn check_domain_host(&self, url: &Url, name: &str) -> Result<(), SsrfError> {
        if url.scheme() != "https" {
            return Err(SsrfError::Scheme(url.scheme().to_owned()));
        }
        let name = normalise_host(name);
        if self.is_allowed_host(&name) { Ok(()) } else { Err(SsrfError::HostNotAllowed(name)) }
    }

    fn is_allowed_host(&self, name: &str) -> bool {
        let localhost_ok = name == "localhost" && self.in_allowed_networks(IpAddr::V4(Ipv4Addr::LOCALHOST));
        localhost_ok || self.allowed_hosts.iter().any(|p| host_matches(p, name))
    }

    /// Re-checks `url` and returns the one socket address to connect to.
    ///
    /// A DNS name is resolved once and the first address passing
    /// [`OutboundPolicy::is_allowed_ip`] is returned. The caller must connect
    /// to exactly this address and must not follow redirects. With reqwest:
    /// `ClientBuilder::resolve(host, addr)` for the request's host plus
    /// `redirect::Policy::none()` (TLS still verifies the certificate against
    /// the host name), or a `reqwest::dns::Resolve` implementation that calls
    /// [`OutboundPolicy::resolve_host`] so one pooled client applies the
    /// guard to every new connection. The returned port is the URL's port.
    ///
    /// # Errors
    /// Any [`SsrfError`] of [`OutboundPolicy::check_parsed_url`], or
    /// [`SsrfError::Resolve`] / [`SsrfError::NoAllowedAddress`].
    pub async fn resolve(&self, url: &Url) -> Result<SocketAddr, SsrfError> {
        self.check_parsed_url(url)?;
        let port = url.port_or_known_default().ok_or_else(|| SsrfError::Scheme(url.scheme().to_owned()))?;
        match url.host() {
            None => Err(SsrfError::MissingHost),
            Some(Host::Ipv4(ip)) => Ok(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(Host::Ipv6(ip)) => Ok(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(Host::Domain(name)) => self.resolve_host(name, port).await,
        }
    }

    /// Resolves a host name once and returns the first allowed address.
    /// This checks addresses only; host names are checked by
    /// [`OutboundPolicy::check_parsed_url`].
    ///
    /// # Errors
    /// [`SsrfError::Resolve`] on resolver failure or after [`DNS_TIMEOUT`],
    /// [`SsrfError::NoAllowedAddress`] if every address is refused.
    pub async fn resolve_host(&self, host: &str, port: u16) -> Result<SocketAddr, SsrfError> {
        let resolve_error = |reason: String| SsrfError::Resolve { host: host.to_owned(), reason };
        let addrs = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| resolve_error("timed out".to_owned()))?
            .map_err(|e| resolve_error(e.to_string()))?;
        for addr in addrs {
            if self.is_allowed_ip(addr.ip()) {
                return Ok(addr);
            }
            tracing::debug!(host, %addr, "outbound guard skipped a non-global address");
        }
        Err(SsrfError::NoAllowedAddress(host.to_owned()))
    }
}

fn normalise_host(host: &str) -> String {
    let host = host.trim();
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// `pattern` is an exact host or `*.suffix`; the wildcard requires at least
/// one non-empty label before the suffix, on a label boundary.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.strip_suffix(suffix).and_then(|rest| rest.strip_suffix('.')).is_some_and(|label| !label.is_empty())
        }
        None => host == pattern,
    }
}

/// Parses a comma-separated list of CIDRs (the `HERALD_OUTBOUND_ALLOW`
/// format, e.g. `127.0.0.1/32,::1/128`). A bare address means a single host;
/// blanks around entries and empty entries are ignored.
///
/// # Errors
/// [`SsrfError::InvalidNetwork`] naming the first bad entry.
pub fn parse_networks(spec: &str) -> Result<Vec<IpNet>, SsrfError> {
    spec.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| SsrfError::InvalidNetwork(entry.to_owned()))
        })
        .collect()
}

/// IPv4 ranges that are not globally reachable unicast (IANA special-purpose
/// registry), as (network, prefix length).
const V4_NOT_GLOBAL: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network", incl. unspecified
    (0x0A00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 carrier-grade NAT
    (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
    (0xA9FE_0000, 16), // 169.254.0.0/16 link-local (cloud metadata)
    (0xAC10_0000, 12), // 172.16.0.0/12 private
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 documentation
    (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay anycast (deprecated)
    (0xC0A8_0000, 16), // 192.168.0.0/16 private
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 documentation
    (0xCB00_7100, 24), // 203.0.113.0/24 documentation
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, incl. 255.255.255.255 broadcast
];

/// IPv6 global unicast is 2000::/3 (RFC 4291). Everything outside it is
/// refused, which covers ::, ::1, IPv4-compatible ::/96, IPv4-mapped
/// ::ffff:0:0/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, discard 100::/64,
/// SRv6 5f00::/16, unique-local fc00::/7, link-local fe80::/10, site-local
/// fec0::/10 and multicast ff00::/8. These blocks inside 2000::/3 are refused too.
const V6_NOT_GLOBAL_IN_2000_3: &[(u128, u8)] = &[
    // 2001::/23 IETF protocol assignments: Teredo 2001::/32, benchmarking,
    // ORCHID. A few anycast services live here; no push service does.
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23),
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 6to4 (embeds IPv4)
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation (RFC 9637)
];

/// Whether `ip` is a globally reachable unicast address, i.e. one an
/// attacker-supplied URL may point at. Deliberately stricter than the IANA
/// registry: any IPv6 form that embeds or translates an IPv4 address
/// (mapped, compatible, NAT64, 6to4, Teredo) is refused rather than judged by
/// its embedded address, since translation happens outside our control.
#[must_use]
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !V4_NOT_GLOBAL.iter().any(|&(net, len)| bits & (u32::MAX << (32 - len)) == net)
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let in_prefix = |net: u128, len: u8| bits & (u128::MAX << (128 - len)) == net;
    in_prefix(0x2000 << 112, 3) && !V6_NOT_GLOBAL_IN_2000_3.iter().any(|&(net, len)| in_prefix(net, len))
}

#[cfg(test)]
mod tests;
