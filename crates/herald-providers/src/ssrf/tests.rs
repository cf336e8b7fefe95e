//! Tests of the outbound SSRF guard.

use super::*;

fn default_policy() -> OutboundPolicy {
    OutboundPolicy::default_push_hosts()
}

fn loopback_policy() -> OutboundPolicy {
    default_policy().with_allowed_networks(parse_networks("127.0.0.1/32").unwrap())
}

#[test]
fn hostile_urls_are_refused_by_default() {
    let hostile = [
        "https://0.0.0.0/",
        "https://[::]/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/",
        "https://[fc00::1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://0x7f.1/",
        "https://127.1/",
        "https://10.0.0.1/",
        "https://192.168.1.1/",
        "https://172.16.0.1/",
        "https://[fe80::1]/",
        "https://[::127.0.0.1]/",
        "https://[2002:7f00:1::]/",
        "https://[2001::1]/",
        "https://user:pass@fcm.googleapis.com/x",
        "https://user@fcm.googleapis.com/x",
        "http://fcm.googleapis.com/x",
        "ftp://fcm.googleapis.com/x",
        "https://evil.example.com/",
        "https://localhost/",
        "https://fcm.googleapis.com.evil.com/",
        "https://evilfcm.googleapis.com/",
        "https://googleapis.com/",
        "https://push.apple.com/",
        "https://evilpush.apple.com/",
        "https://8.8.8.8.nip.io/",
        "http://8.8.8.8/",
        "file:///etc/passwd",
        "not a url",
    ];
    let policy = default_policy();
    for url in hostile {
        assert!(policy.check_url(url).is_err(), "{url} was accepted");
    }
}

#[test]
fn refusals_name_the_rule() {
    let policy = default_policy();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(policy.check_url("https://2130706433/"), Err(SsrfError::AddressNotAllowed(loopback)));
    assert_eq!(policy.check_url("https://0177.0.0.1/"), Err(SsrfError::AddressNotAllowed(loopback)));
    let err = policy.check_url("https://user:pass@fcm.googleapis.com/x");
    assert_eq!(err, Err(SsrfError::UserInfo));
    let err = policy.check_url("http://fcm.googleapis.com/x");
    assert_eq!(err, Err(SsrfError::Scheme("http".into())));
    let err = policy.check_url("https://evil.example.com/");
    assert_eq!(err, Err(SsrfError::HostNotAllowed("evil.example.com".into())));
}

#[test]
fn push_services_are_accepted() {
    let accepted = [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://FCM.googleapis.com./fcm/send/abc",
        "https://android.googleapis.com/gcm/send/abc",
        "https://updates.push.services.mozilla.com/wpush/v2/abc",
        "https://push.services.mozilla.com/abc",
        "https://wns2-by3p.notify.windows.com/w/?token=abc",
        "https://web.push.apple.com/abc",
        "https://api.push.apple.com/3/device/abc",
        "https://8.8.8.8/",
        "https://[2606:4700::1111]/",
    ];
    let policy = default_policy();
    for url in accepted {
        assert!(policy.check_url(url).is_ok(), "{url} was refused");
    }
}

#[test]
fn allowed_networks_admit_http_ip_literals_only() {
    let policy = loopback_policy();
    let url = policy.check_url("http://127.0.0.1:8080/push/1").unwrap();
    assert_eq!(url.as_str(), "http://127.0.0.1:8080/push/1");
    assert!(policy.check_url("https://127.0.0.1/").is_ok());
    assert!(policy.check_url("http://127.0.0.2/").is_err());
    assert!(policy.check_url("http://[::1]/").is_err());
    assert!(policy.check_url("http://[::ffff:127.0.0.1]/").is_err());
    // Global addresses still need https: only configured networks get http.
    assert!(policy.check_url("http://8.8.8.8/").is_err());
    // localhost is a DNS name: https only, and only when 127.0.0.1 is allowed.
    assert!(policy.check_url("https://localhost:8443/").is_ok());
    assert!(policy.check_url("http://localhost:8080/").is_err());
}

#[tokio::test]
async fn resolve_returns_the_checked_address() {
    let policy = loopback_policy();
    let url = policy.check_url("http://127.0.0.1:8080/push/1").unwrap();
    let addr = policy.resolve(&url).await.unwrap();
    assert_eq!(addr, "127.0.0.1:8080".parse().unwrap());

    let url = Url::parse("http://127.0.0.2/").unwrap();
    assert!(policy.resolve(&url).await.is_err());
    let url = Url::parse("https://8.8.8.8/").unwrap();
    assert_eq!(policy.resolve(&url).await.unwrap(), "8.8.8.8:443".parse().unwrap());
}

#[tokio::test]
async fn name_resolving_to_loopback_is_refused() {
    // An allow-listed name whose DNS answer is loopback (DNS rebinding, or a
    // hostile record) must not be connected to.
    let policy = OutboundPolicy::new(vec!["localhost".into()], Vec::new());
    let url = policy.check_url("https://localhost/").unwrap();
    let err = policy.resolve(&url).await.unwrap_err();
    assert_eq!(err, SsrfError::NoAllowedAddress("localhost".into()));
    // resolve() re-applies the static check to a URL that skipped check_url.
    let url = Url::parse("https://localhost/").unwrap();
    assert!(default_policy().resolve(&url).await.is_err());
}

#[tokio::test]
async fn localhost_resolves_to_allowed_loopback_only() {
    let policy = loopback_policy();
    let url = policy.check_url("https://localhost:9/").unwrap();
    let addr = policy.resolve(&url).await.unwrap();
    assert_eq!(addr, "127.0.0.1:9".parse().unwrap());
}

#[test]
fn is_global_classification() {
    let not_global = [
        "0.0.0.0",
        "0.1.2.3",
        "10.1.2.3",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.0.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::7f00:1",
        "::ffff:8.8.8.8",
        "::ffff:127.0.0.1",
        "64:ff9b::808:808",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:0:4136:e378::1",
        "2001:db8::1",
        "2002:c000:204::1",
        "3fff::1",
        "5f00::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
    ];
    for ip in not_global {
        assert!(!is_global(ip.parse().unwrap()), "{ip} classified global");
    }
    let global = [
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "142.250.74.42",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "2001:4860:4860::8888",
    ];
    for ip in global {
        assert!(is_global(ip.parse().unwrap()), "{ip} classified non-global");
    }
}

#[test]
fn host_patterns_match_precisely() {
    assert!(host_matches("*.push.apple.com", "api.push.apple.com"));
    assert!(host_matches("*.push.apple.com", "a.b.push.apple.com"));
    assert!(!host_matches("*.push.apple.com", "push.apple.com"));
    assert!(!host_matches("*.push.apple.com", "evilpush.apple.com"));
    assert!(!host_matches("*.push.apple.com", ".push.apple.com"));
    assert!(host_matches("fcm.googleapis.com", "fcm.googleapis.com"));
    assert!(!host_matches("fcm.googleapis.com", "x.fcm.googleapis.com"));
    let policy = OutboundPolicy::new(vec![" Push.Example.COM. ".into()], Vec::new());
    assert_eq!(policy.allowed_hosts(), ["push.example.com"]);
    assert!(!default_policy().allowed_hosts().iter().any(|h| h == "*.googleapis.com"));
}

#[test]
fn network_lists_parse() {
    let nets = parse_networks(" 127.0.0.1/32, ::1/128,,10.0.0.0/8 ,192.168.1.5").unwrap();
    let expected: Vec<IpNet> =
        ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "192.168.1.5/32"].iter().map(|n| n.parse().unwrap()).collect();
    assert_eq!(nets, expected);
    assert!(parse_networks("").unwrap().is_empty());
    assert_eq!(parse_networks("127.0.0.1/33"), Err(SsrfError::InvalidNetwork("127.0.0.1/33".into())));
    assert!(parse_networks("localhost").is_err());
    let policy = default_policy().with_allowed_networks(nets);
    assert!(policy.is_allowed_ip("10.9.8.7".parse().unwrap()));
    assert!(policy.is_allowed_ip("::1".parse().unwrap()));
    assert!(!policy.is_allowed_ip("172.16.0.1".parse().unwrap()));
}
