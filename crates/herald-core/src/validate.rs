//! Validation of everything that arrives from the network, done once at the edge of the service
//! layer so that nothing invalid reaches a transaction.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::error::FieldError;
use crate::model::{ChannelType, Environment};

/// Maximum length of an external user id.
pub const MAX_EXTERNAL_ID: usize = 255;
/// Maximum length of a Web Push endpoint.
pub const MAX_ENDPOINT: usize = 1024;
/// Maximum length of the base64url Web Push keys.
pub const MAX_WEBPUSH_KEY: usize = 255;
/// Maximum length of names (accounts, channels) and topics.
pub const MAX_NAME: usize = 255;
/// Maximum length of an FCM registration token.
pub const MAX_FCM_TOKEN: usize = 4096;

/// Decides whether a user-supplied outbound URL may be stored. The delivery crate implements
/// it with the SSRF guard so that registration refuses what delivery would refuse.
pub trait EndpointPolicy: Send + Sync {
    /// Checks a Web Push endpoint: `Ok` when it may be contacted, otherwise a reason.
    fn check(&self, url: &str) -> Result<(), String>;

    /// Checks a provider base URL set by an account (channel `endpoint`, FCM `token_uri`).
    /// Unlike push endpoints these are not limited to the browsers' push services.
    fn check_provider_base(&self, url: &str) -> Result<(), String> {
        self.check(url)
    }
}

/// The policy used when nothing more specific is configured: absolute `https` URLs with a host
/// and no credentials.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpsOnly;

impl EndpointPolicy for HttpsOnly {
    fn check(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        if url.scheme() != "https" {
            return Err("must be an https URL".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        Ok(())
    }
}

/// Checks a required, length-limited string field without control characters and pushes any
/// error.
pub fn required_str<'a>(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&'a str>,
    max: usize,
) -> Option<&'a str> {
    match value {
        None | Some("") => {
            errors.push(FieldError::required(field));
            None
        }
        Some(v) if v.chars().count() > max => {
            errors.push(FieldError::too_long(field, max));
            None
        }
        // Names, URLs and tokens have no use for control characters.
        Some(v) if v.chars().any(char::is_control) => {
            errors.push(FieldError::new(field, "invalid", format!("{field} must not contain control characters")));
            None
        }
        Some(v) => Some(v),
    }
}

/// Validates an external user id: 1–255 characters, no control characters.
pub fn external_id(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::required(field));
    }
    if value.chars().count() > MAX_EXTERNAL_ID {
        return Err(FieldError::too_long(field, MAX_EXTERNAL_ID));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "invalid", "must not contain control characters"));
    }
    Ok(())
}

/// Validates a topic name: 1–255 characters of letters, digits and `-_.:~@/`.
pub fn topic_name(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::required(field));
    }
    if value.len() > MAX_NAME {
        return Err(FieldError::too_long(field, MAX_NAME));
    }
    let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:~@/".contains(c));
    if !ok {
        return Err(FieldError::new(field, "invalid", "may contain only letters, digits and -_.:~@/"));
    }
    Ok(())
}

/// Decodes base64url with or without padding.
pub fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

/// Decodes base64 in either alphabet, padded or not: browsers' `PushSubscription.toJSON()`
/// gives unpadded base64url, but hand-written clients often pass `btoa()` output (standard
/// alphabet, padded).
pub fn b64_any(s: &str) -> Option<Vec<u8>> {
    b64url(s).or_else(|| STANDARD.decode(s).ok()).or_else(|| STANDARD_NO_PAD.decode(s).ok())
}

/// The canonical form of a Web Push endpoint: surrounding ASCII whitespace trimmed, then the
/// WHATWG serialisation (lower-case scheme and host, default port dropped). One browser is one
/// endpoint, whatever padding or spelling a client sent, so this is what is stored, compared
/// and deduplicated. Whitespace or control characters left inside are refused: no push
/// service issues them, and the URL parser would silently strip some of them.
pub fn canonical_endpoint(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters");
    }
    let url = url::Url::parse(trimmed).map_err(|_| "is not a valid URL")?;
    Ok(url.into())
}

/// The canonical form of a device token: APNs tokens are hex, which Apple treats
/// case-insensitively, so they are stored lower-case; FCM tokens are opaque and kept exactly.
pub fn canonical_token(channel_type: ChannelType, raw: &str) -> String {
    match channel_type {
        ChannelType::Apns => raw.to_ascii_lowercase(),
        _ => raw.to_string(),
    }
}

/// The canonical device address (endpoint or token) of stored settings, as the store keys
/// device ownership on; `None` when the settings hold neither.
pub fn device_address(channel_type: ChannelType, settings: &Value) -> Option<String> {
    match channel_type {
        ChannelType::WebPush => canonical_endpoint(settings.get("endpoint")?.as_str()?).ok(),
        _ => {
            let token = settings.get("token").or_else(|| settings.get("device_token"))?.as_str()?;
            Some(canonical_token(channel_type, token))
        }
    }
}

/// Encodes base64url without padding, the form Web Push uses everywhere.
pub fn to_b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True when `bytes` is an uncompressed P-256 point that lies on the curve.
pub fn is_p256_point(bytes: &[u8]) -> bool {
    use aws_lc_rs::agreement::{ECDH_P256, ParsedPublicKey, ParsedPublicKeyFormat, UnparsedPublicKey};
    if bytes.len() != 65 || bytes[0] != 0x04 {
        return false;
    }
    ParsedPublicKey::try_from(&UnparsedPublicKey::new(&ECDH_P256, bytes))
        .is_ok_and(|k| k.format() == ParsedPublicKeyFormat::Uncompressed)
}

/// Settings validated for their channel type, normalised for storage, plus the identifier
/// they imply.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSettings {
    /// Normalised settings: Web Push `{endpoint, p256dh, auth}`, APNs/FCM `{token}`.
    pub settings: Value,
    /// The endpoint (Web Push) or token (APNs, FCM).
    pub natural_identifier: String,
}

/// Guesses the channel type that settings are meant for, for registrations without a
/// `channel_id`: an `endpoint` means Web Push, a hex token APNs, any other token FCM.
pub fn implied_channel_type(settings: &Value) -> Option<ChannelType> {
    let obj = settings.as_object()?;
    if obj.contains_key("endpoint") {
        return Some(ChannelType::WebPush);
    }
    let token = obj.get("token").or_else(|| obj.get("device_token"))?.as_str()?;
    if is_apns_token(token) { Some(ChannelType::Apns) } else { Some(ChannelType::Fcm) }
}

fn is_apns_token(token: &str) -> bool {
    (64..=200).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Validates subscription settings for `channel_type`; errors name `settings.<field>`.
pub fn settings(
    channel_type: ChannelType,
    value: &Value,
    endpoints: &dyn EndpointPolicy,
) -> Result<ValidSettings, Vec<FieldError>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![FieldError::new("settings", "invalid_type", "settings must be an object")]);
    };
    match channel_type {
        ChannelType::WebPush => web_push_settings(obj, endpoints),
        ChannelType::Apns => apns_settings(obj),
        ChannelType::Fcm => token_settings(ChannelType::Fcm, obj, "FCM", is_fcm_token, "1-4096 printable characters"),
    }
}

/// APNs settings: the token, plus an optional `bundle_id` that replaces the channel's as this
/// device's `apns-topic` (an app family sharing one key, Bright Pattern's `ios_app_bundle_id`).
fn apns_settings(obj: &Map<String, Value>) -> Result<ValidSettings, Vec<FieldError>> {
    let mut valid = token_settings(ChannelType::Apns, obj, "APNs", is_apns_token, "hex, 64-200 characters")?;
    let mut errors = Vec::new();
    if let Some(bundle) = str_field(obj, "bundle_id", &mut errors, "settings.bundle_id") {
        if is_bundle_id(bundle) {
            valid.settings["bundle_id"] = json!(bundle);
        } else if errors.is_empty() {
            errors.push(FieldError::new(
                "settings.bundle_id",
                "invalid",
                "bundle_id must be 1-155 letters, digits, '.' and '-'",
            ));
        }
    }
    if errors.is_empty() { Ok(valid) } else { Err(errors) }
}

/// An Apple bundle id: reverse-DNS letters, digits, `.` and `-`.
fn is_bundle_id(s: &str) -> bool {
    (1..=155).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

fn is_fcm_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_FCM_TOKEN && token.bytes().all(|b| b.is_ascii_graphic())
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str, errors: &mut Vec<FieldError>, path: &str) -> Option<&'a str> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(FieldError::new(path, "invalid_type", format!("{path} must be a string")));
            Some("")
        }
    }
}

fn web_push_settings<'a>(
    obj: &'a Map<String, Value>,
    endpoints: &dyn EndpointPolicy,
) -> Result<ValidSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    // Accept the browser's `PushSubscription.toJSON()` shape (`keys: {p256dh, auth}`) as well
    // as the flat one, and store the flat one.
    let keys = obj.get("keys").and_then(Value::as_object).unwrap_or(obj);
    let endpoint = str_field(obj, "endpoint", &mut errors, "settings.endpoint");
    let p256dh = str_field(keys, "p256dh", &mut errors, "settings.p256dh");
    let auth = str_field(keys, "auth", &mut errors, "settings.auth");
    if !errors.is_empty() {
        return Err(errors);
    }
    let trim = |s: Option<&'a str>| s.map(|s| s.trim_matches(|c: char| c.is_ascii_whitespace()));
    let endpoint = required_str(&mut errors, "settings.endpoint", trim(endpoint), MAX_ENDPOINT);
    let p256dh = required_str(&mut errors, "settings.p256dh", trim(p256dh), MAX_WEBPUSH_KEY);
    let auth = required_str(&mut errors, "settings.auth", trim(auth), MAX_WEBPUSH_KEY);
    let endpoint = endpoint.and_then(|e| match canonical_endpoint(e) {
        Ok(canonical) if canonical.len() > MAX_ENDPOINT => {
            errors.push(FieldError::too_long("settings.endpoint", MAX_ENDPOINT));
            None
        }
        Ok(canonical) => match endpoints.check(&canonical) {
            Ok(()) => Some(canonical),
            Err(reason) => {
                errors.push(FieldError::new("settings.endpoint", "invalid", format!("endpoint {reason}")));
                None
            }
        },
        Err(reason) => {
            errors.push(FieldError::new("settings.endpoint", "invalid", format!("endpoint {reason}")));
            None
        }
    });
    let p256dh = p256dh.and_then(|k| match b64_any(k) {
        Some(bytes) if is_p256_point(&bytes) => Some(to_b64url(&bytes)),
        _ => {
            errors.push(FieldError::new(
                "settings.p256dh",
                "invalid",
                "p256dh must be a base64url uncompressed P-256 public key (65 bytes)",
            ));
            None
        }
    });
    let auth = auth.and_then(|a| match b64_any(a) {
        Some(bytes) if bytes.len() == 16 => Some(to_b64url(&bytes)),
        _ => {
            errors.push(FieldError::new("settings.auth", "invalid", "auth must be a base64url 16-byte secret"));
            None
        }
    });
    match (endpoint, p256dh, auth) {
        (Some(e), Some(p), Some(a)) if errors.is_empty() => {
            Ok(ValidSettings { settings: json!({"endpoint": e, "p256dh": p, "auth": a}), natural_identifier: e })
        }
        _ => Err(errors),
    }
}

fn token_settings(
    channel_type: ChannelType,
    obj: &Map<String, Value>,
    provider: &str,
    valid: fn(&str) -> bool,
    shape: &str,
) -> Result<ValidSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    let field = if obj.contains_key("device_token") && !obj.contains_key("token") { "device_token" } else { "token" };
    let path = format!("settings.{field}");
    let token = str_field(obj, field, &mut errors, &path);
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(vec![FieldError::required("settings.token")]);
    };
    if !valid(token) {
        return Err(vec![FieldError::new(path, "invalid", format!("{provider} token must be {shape}"))]);
    }
    let token = canonical_token(channel_type, token);
    Ok(ValidSettings { settings: json!({"token": token}), natural_identifier: token })
}

/// Parses an optional environment field.
pub fn environment(value: Option<&str>) -> Result<Option<Environment>, FieldError> {
    value
        .map(|v| {
            Environment::parse(v).ok_or_else(|| {
                FieldError::new(
                    "environment",
                    "invalid",
                    format!("environment must be one of {}", Environment::expected()),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn wp(endpoint: &str, p256dh: &str, auth: &str) -> Result<ValidSettings, Vec<FieldError>> {
        settings(ChannelType::WebPush, &json!({"endpoint": endpoint, "p256dh": p256dh, "auth": auth}), &HttpsOnly)
    }

    fn reasons(r: Result<ValidSettings, Vec<FieldError>>) -> Vec<(String, &'static str)> {
        r.unwrap_err().into_iter().map(|e| (e.field, e.reason)).collect()
    }

    #[test]
    fn accepts_a_browser_subscription_in_both_shapes() {
        let flat = wp("https://push.example/abc", P256DH, AUTH).unwrap();
        let nested = settings(
            ChannelType::WebPush,
            &json!({"endpoint": "https://push.example/abc", "keys": {"p256dh": P256DH, "auth": AUTH}}),
            &HttpsOnly,
        )
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.natural_identifier, "https://push.example/abc");
    }

    #[test]
    fn rejects_points_off_the_curve_and_wrong_lengths() {
        let mut off_curve = b64url(P256DH).unwrap();
        off_curve[64] ^= 1;
        assert_eq!(
            reasons(wp("https://p.example/", &to_b64url(&off_curve), AUTH)),
            [("settings.p256dh".into(), "invalid")]
        );
        assert_eq!(reasons(wp("https://p.example/", &P256DH[..60], AUTH)), [("settings.p256dh".into(), "invalid")]);
        assert_eq!(reasons(wp("https://p.example/", P256DH, "AAAA")), [("settings.auth".into(), "invalid")]);
        let compressed = to_b64url(&[2u8; 33]);
        assert_eq!(reasons(wp("https://p.example/", &compressed, AUTH)), [("settings.p256dh".into(), "invalid")]);
    }

    #[test]
    fn enforces_required_and_length_limits() {
        assert_eq!(reasons(wp("", P256DH, AUTH)), [("settings.endpoint".into(), "required")]);
        let long = format!("https://p.example/{}", "a".repeat(1024));
        assert_eq!(reasons(wp(&long, P256DH, AUTH)), [("settings.endpoint".into(), "too_long")]);
        assert_eq!(reasons(wp("https://p.example/", &"A".repeat(256), AUTH)), [("settings.p256dh".into(), "too_long")]);
        assert_eq!(reasons(wp("http://p.example/", P256DH, AUTH)), [("settings.endpoint".into(), "invalid")]);
        let wrong_type =
            settings(ChannelType::WebPush, &json!({"endpoint": 5, "p256dh": P256DH, "auth": AUTH}), &HttpsOnly);
        assert_eq!(reasons(wrong_type), [("settings.endpoint".into(), "invalid_type")]);
    }

    #[test]
    fn one_browser_is_one_canonical_endpoint() {
        let plain = wp("https://push.example/abc", P256DH, AUTH).unwrap();
        for spelling in [
            " https://push.example/abc",
            "https://push.example/abc\n",
            "\thttps://push.example/abc",
            "HTTPS://PUSH.example:443/abc",
            "https://push.EXAMPLE/abc \r\n",
        ] {
            let got = wp(spelling, P256DH, AUTH).unwrap();
            assert_eq!(got.natural_identifier, "https://push.example/abc", "{spelling:?}");
            assert_eq!(got.settings, plain.settings);
        }
        for bad in ["https://push.example/a b", "https://push.example/a\u{0}b", "https://push.example/a\tb"] {
            assert_eq!(reasons(wp(bad, P256DH, AUTH)), [("settings.endpoint".into(), "invalid")], "{bad:?}");
        }
    }

    #[test]
    fn keys_in_any_base64_are_stored_as_unpadded_base64url() {
        use base64::engine::general_purpose::STANDARD;
        let p = STANDARD.encode(b64url(P256DH).unwrap());
        let a = STANDARD.encode(b64url(AUTH).unwrap());
        assert!(p.ends_with('=') || p.contains('+') || p.contains('/'));
        let got = wp("https://push.example/abc", &p, &a).unwrap();
        assert_eq!(got.settings["p256dh"], P256DH);
        assert_eq!(got.settings["auth"], AUTH);
        let padded = wp("https://push.example/abc", &format!("{P256DH}="), &format!("{AUTH}==")).unwrap();
        assert_eq!(padded.settings["auth"], AUTH);
    }

    #[test]
    fn apns_tokens_are_lower_case_and_fcm_tokens_exact() {
        let upper = "AB".repeat(32);
        let got = settings(ChannelType::Apns, &json!({"token": upper}), &HttpsOnly).unwrap();
        assert_eq!(got.natural_identifier, "ab".repeat(32));
        assert_eq!(got.settings["token"], "ab".repeat(32));
        let fcm = settings(ChannelType::Fcm, &json!({"token": "AbC:x"}), &HttpsOnly).unwrap();
        assert_eq!(fcm.natural_identifier, "AbC:x");
        assert_eq!(device_address(ChannelType::Apns, &json!({"token": upper})), Some("ab".repeat(32)));
        assert_eq!(
            device_address(ChannelType::WebPush, &json!({"endpoint": " HTTPS://P.example:443/x"})),
            Some("https://p.example/x".into())
        );
    }

    #[test]
    fn validates_device_tokens() {
        let apns = "a".repeat(64);
        assert!(settings(ChannelType::Apns, &json!({"token": apns}), &HttpsOnly).is_ok());
        assert!(settings(ChannelType::Apns, &json!({"token": "xyz"}), &HttpsOnly).is_err());
        assert!(settings(ChannelType::Fcm, &json!({"token": "fcm:token-1"}), &HttpsOnly).is_ok());
        assert!(settings(ChannelType::Fcm, &json!({"token": "has space"}), &HttpsOnly).is_err());
        assert!(settings(ChannelType::Fcm, &json!({"token": "x".repeat(4097)}), &HttpsOnly).is_err());
        assert_eq!(implied_channel_type(&json!({"token": "ab".repeat(32)})), Some(ChannelType::Apns));
        assert_eq!(implied_channel_type(&json!({"token": "fcm:abc"})), Some(ChannelType::Fcm));
        assert_eq!(implied_channel_type(&json!({"endpoint": "https://x"})), Some(ChannelType::WebPush));
    }

    #[test]
    fn apns_settings_keep_a_valid_bundle_id() {
        let token = "ab".repeat(32);
        let ok = settings(ChannelType::Apns, &json!({"token": token, "bundle_id": "com.example.chat"}), &HttpsOnly);
        assert_eq!(ok.unwrap().settings, json!({"token": token, "bundle_id": "com.example.chat"}));
        for bad in [json!("com example"), json!(""), json!(".com"), json!(5)] {
            let got = settings(ChannelType::Apns, &json!({"token": token, "bundle_id": bad}), &HttpsOnly);
            assert_eq!(got.unwrap_err()[0].field, "settings.bundle_id");
        }
        // FCM tokens carry no bundle id: it is dropped, as any other unknown field.
        let fcm = settings(ChannelType::Fcm, &json!({"token": "t", "bundle_id": "com.x"}), &HttpsOnly).unwrap();
        assert_eq!(fcm.settings, json!({"token": "t"}));
    }

    #[test]
    fn external_ids_and_topics() {
        assert!(external_id("user", &"u".repeat(255)).is_ok());
        assert_eq!(external_id("user", &"u".repeat(256)).unwrap_err().reason, "too_long");
        assert_eq!(external_id("user", "").unwrap_err().reason, "required");
        assert!(topic_name("topic", "chat:42").is_ok());
        assert_eq!(topic_name("topic", "a b").unwrap_err().reason, "invalid");
    }
}
