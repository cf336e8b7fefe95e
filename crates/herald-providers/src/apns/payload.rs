//! The APNs request: JSON payload and `apns-*` headers, built from a notification's
//! [`Content`] and [`Options`].

use herald_core::delivery::{Content, Options, Urgency};
use herald_core::model::SubscriptionKind;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::json::{check_size, merge_patch};

/// Apple's limit for every push type but VoIP.
pub const MAX_PAYLOAD: usize = 4096;
/// Apple's limit for VoIP pushes.
pub const MAX_VOIP_PAYLOAD: usize = 5120;
/// Apple's limit on `apns-collapse-id`.
pub const MAX_COLLAPSE_ID: usize = 64;

/// The `apns-push-type` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushType {
    /// Shows an alert, plays a sound or badges the icon.
    Alert,
    /// Wakes the app silently (`content-available`); Apple requires priority 5.
    Background,
    /// A PushKit VoIP push (incoming call).
    Voip,
}

impl PushType {
    pub fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Voip => "voip",
        }
    }
}

/// A serialized payload and the push type it implies.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub body: Vec<u8>,
    pub push_type: PushType,
}

/// Builds, merges and size-checks the payload.
/// The longest receipt token (`herald_core::tokens`), reserved when checking a payload's size
/// before the delivery (and so its token) exists.
pub(crate) const RECEIPT_PLACEHOLDER: &str = "hr1.AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA";

/// Builds, merges and size-checks the payload; the delivery's receipt token goes at the top
/// level as `herald_receipt`, where the app reads it to report displayed / clicked.
pub(crate) fn prepare(
    content: &Content,
    options: &Options,
    kind: SubscriptionKind,
    receipt: Option<&str>,
) -> Result<Prepared, String> {
    if let Some(id) = &options.collapse_key
        && id.len() > MAX_COLLAPSE_ID
    {
        return Err(format!("APNs collapse id is {} bytes; the limit is {MAX_COLLAPSE_ID}", id.len()));
    }
    let mut payload = base_payload(content);
    match &options.apns {
        Some(patch @ Value::Object(_)) => merge_patch(&mut payload, patch),
        Some(Value::Null) | None => {}
        Some(_) => return Err("APNs overrides (options.apns) must be a JSON object".into()),
    }
    if let (Some(receipt), Some(obj)) = (receipt, payload.as_object_mut()) {
        obj.insert("herald_receipt".into(), json!(receipt));
    }
    let push_type = push_type(&payload, kind);
    if push_type == PushType::Background
        && let Some(aps) = payload.get_mut("aps").and_then(Value::as_object_mut)
    {
        aps.entry("content-available").or_insert(json!(1));
    }
    let body = serde_json::to_vec(&payload).map_err(|e| format!("APNs payload: {e}"))?;
    let limit = if kind == SubscriptionKind::Voip { MAX_VOIP_PAYLOAD } else { MAX_PAYLOAD };
    check_size("APNs", body.len(), limit)?;
    Ok(Prepared { body, push_type })
}

/// The payload before overrides: `aps` from the content's visible fields, the app's data keys
/// at the top level (where iOS apps read custom keys), and `url`/`image` for the app's handler.
pub(crate) fn base_payload(content: &Content) -> Value {
    let mut aps = Map::new();
    let mut alert = Map::new();
    if let Some(title) = &content.title {
        alert.insert("title".into(), json!(title));
    }
    if let Some(body) = &content.body {
        alert.insert("body".into(), json!(body));
    }
    if !alert.is_empty() {
        aps.insert("alert".into(), Value::Object(alert));
    }
    if let Some(badge) = content.badge.as_ref().and_then(badge_number) {
        aps.insert("badge".into(), json!(badge));
    }
    if let Some(sound) = &content.sound {
        aps.insert("sound".into(), json!(sound));
    }
    if content.image.is_some() {
        // Lets a notification service extension download and attach the image.
        aps.insert("mutable-content".into(), json!(1));
    }
    let mut payload = Map::new();
    if let Some(Value::Object(data)) = &content.data {
        payload.extend(data.iter().filter(|(k, _)| *k != "aps").map(|(k, v)| (k.clone(), v.clone())));
    }
    // The content's own fields win over same-named data keys: they are what the sender set
    // explicitly for this purpose.
    if let Some(url) = &content.url {
        payload.insert("url".into(), json!(url));
    }
    if let Some(image) = &content.image {
        payload.insert("image".into(), json!(image));
    }
    payload.insert("aps".into(), Value::Object(aps));
    Value::Object(payload)
}

/// APNs badges are numbers; a Web Push badge (an icon URL) has no APNs meaning and is dropped.
fn badge_number(badge: &Value) -> Option<u64> {
    badge.as_u64().or_else(|| badge.as_str().and_then(|s| s.trim().parse().ok()))
}

/// VoIP for PushKit tokens; otherwise alert when the final `aps` shows anything to the user,
/// background when it does not. Decided after overrides so an override that adds an alert
/// is sent as one.
pub(crate) fn push_type(payload: &Value, kind: SubscriptionKind) -> PushType {
    if kind == SubscriptionKind::Voip {
        return PushType::Voip;
    }
    let visible =
        payload.get("aps").is_some_and(|aps| ["alert", "badge", "sound"].iter().any(|k| aps.get(k).is_some()));
    if visible { PushType::Alert } else { PushType::Background }
}

/// `apns-priority`: 10 (immediately) when the sender asked for high priority or urgency, else 5
/// (power-friendly). Background pushes must be 5. VoIP defaults to 10, because a call that
/// rings late is useless, unless the sender explicitly asked for `normal`.
pub(crate) fn priority(options: &Options, push_type: PushType) -> u8 {
    let explicit = options.priority.as_deref().map(|p| p.eq_ignore_ascii_case("high"));
    match push_type {
        PushType::Background => 5,
        PushType::Voip if explicit != Some(false) => 10,
        _ if explicit.unwrap_or(options.urgency == Urgency::High) => 10,
        _ => 5,
    }
}

/// `apns-topic`: the app's bundle id, with `.voip` for PushKit.
pub(crate) fn topic(bundle_id: &str, push_type: PushType) -> String {
    match push_type {
        PushType::Voip => format!("{bundle_id}.voip"),
        _ => bundle_id.to_owned(),
    }
}

/// What the request headers are made of.
pub(crate) struct HeaderInput<'a> {
    pub authorization: HeaderValue,
    pub push_type: PushType,
    pub bundle_id: &'a str,
    pub message_id: &'a str,
    pub options: &'a Options,
    /// Unix seconds after which Apple stops trying (0: deliver now or never).
    pub expiration: i64,
}

/// The request headers, or why one of them cannot be sent (e.g. a collapse key with control
/// characters), which makes the message undeliverable.
pub(crate) fn headers(input: &HeaderInput<'_>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(8);
    map.insert(AUTHORIZATION, input.authorization.clone());
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert(name("apns-push-type"), HeaderValue::from_static(input.push_type.as_str()));
    map.insert(name("apns-topic"), value("apns-topic", topic(input.bundle_id, input.push_type))?);
    map.insert(name("apns-id"), value("apns-id", input.message_id.to_owned())?);
    map.insert(name("apns-expiration"), HeaderValue::from(input.expiration.max(0)));
    map.insert(name("apns-priority"), HeaderValue::from(u16::from(priority(input.options, input.push_type))));
    if let Some(id) = &input.options.collapse_key {
        map.insert(name("apns-collapse-id"), value("apns-collapse-id", id.clone())?);
    }
    Ok(map)
}

fn name(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

fn value(header: &str, text: String) -> Result<HeaderValue, String> {
    HeaderValue::try_from(text).map_err(|_| format!("APNs {header} contains characters a header cannot carry"))
}
