//! Wires the SSRF guard of `herald-providers` into registration-time validation, so the
//! registry refuses exactly the URLs delivery would refuse.

use std::net::IpAddr;

use herald_core::validate::EndpointPolicy;
use herald_providers::ssrf::{IpNet, OutboundPolicy};

/// Registration-time view of the outbound policy.
pub struct Outbound(pub OutboundPolicy);

impl Outbound {
    /// The default push-service allow-list plus the configured networks.
    pub fn new(allowed_networks: Vec<IpNet>) -> Self {
        Outbound(OutboundPolicy::default_push_hosts().with_allowed_networks(allowed_networks))
    }
}

impl EndpointPolicy for Outbound {
    fn check(&self, url: &str) -> Result<(), String> {
        self.0.check_url(url).map(drop).map_err(|e| e.to_string())
    }

    /// Provider base URLs are chosen by the account, not a browser: any public `https` host is
    /// fine, but literal non-global addresses are refused unless configured.
    fn check_provider_base(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        let ip: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(a.into()),
            Some(url::Host::Ipv6(a)) => Some(a.into()),
            Some(url::Host::Domain(_)) => None,
            None => return Err("must have a host".into()),
        };
        let inside_allowed = ip.is_some_and(|ip| self.0.allowed_networks().iter().any(|n| n.contains(&ip)));
        match (url.scheme(), ip) {
            ("https", None) => Ok(()),
            ("https" | "http", Some(_)) if inside_allowed => Ok(()),
            ("https", Some(ip)) if herald_providers::ssrf::is_global(ip) => Ok(()),
            ("https", Some(ip)) => Err(format!("points at a non-public address {ip}")),
            _ => Err("must be an https URL".into()),
        }
    }
}
