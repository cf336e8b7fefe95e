//! The FCM HTTP v1 `message`, built from a notification's [`Content`] and [`Options`].
//!
//! Built in two parts so the size check measures what FCM limits: the *content* part
//! (`notification`, `data`, per-platform display fields and the sender's `options.fcm`
//! overrides) is checked against [`MAX_PAYLOAD`]; the *delivery* part (token, priorities,
//! TTLs, collapse keys) is added underneath it at send time.

use herald_core::delivery::{Content, Options, Urgency};
use serde_json::{Map, Value, json};

use crate::json::{check_size, merge_patch};

/// FCM's limit on a message's payload.
pub const MAX_PAYLOAD: usize = 4096;

/// The content part of the message, overrides merged, size-checked.
pub(crate) fn content_message(content: &Content, options: &Options) -> Result<Value, String> {
    let mut message = base_content(content);
    match &options.fcm {
        Some(patch @ Value::Object(_)) => merge_patch(&mut message, patch),
        Some(Value::Null) | None => {}
        Some(_) => return Err("FCM overrides (options.fcm) must be a JSON object".into()),
    }
    let len = serde_json::to_vec(&message).map_err(|e| format!("FCM payload: {e}"))?.len();
    check_size("FCM", len, MAX_PAYLOAD)?;
    Ok(message)
}

/// `notification`, `data` and the platform fields that only make sense for a visible
/// notification (sound, badge, tag). A message without title and body stays data-only, which
/// the app handles itself.
pub(crate) fn base_content(content: &Content) -> Value {
    let mut message = Map::new();
    let mut notification = Map::new();
    for (key, value) in [("title", &content.title), ("body", &content.body), ("image", &content.image)] {
        if let Some(value) = value {
            notification.insert(key.into(), json!(value));
        }
    }
    let data = data_map(content);
    if !data.is_empty() {
        message.insert("data".into(), Value::Object(data));
    }
    if content.title.is_some() || content.body.is_some() {
        message.insert("notification".into(), Value::Object(notification));
        insert_display_fields(&mut message, content);
    }
    Value::Object(message)
}

/// FCM `data` must map strings to strings: strings pass through, other JSON values are sent as
/// their JSON text, `null`s are dropped; `url` is added so the app knows where a tap leads.
pub(crate) fn data_map(content: &Content) -> Map<String, Value> {
    let mut data = Map::new();
    match &content.data {
        Some(Value::Object(fields)) => {
            for (key, value) in fields {
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                data.insert(key.clone(), Value::String(text));
            }
        }
        // Content validation asks for an object; anything else is still delivered, as text.
        Some(Value::Null) | None => {}
        Some(other) => {
            data.insert("data".into(), Value::String(other.to_string()));
        }
    }
    if let Some(url) = &content.url {
        data.insert("url".into(), json!(url));
    }
    data
}

fn insert_display_fields(message: &mut Map<String, Value>, content: &Content) {
    let mut android = Map::new();
    if let Some(sound) = &content.sound {
        android.insert("sound".into(), json!(sound));
    }
    if let Some(tag) = &content.tag {
        android.insert("tag".into(), json!(tag));
    }
    if !android.is_empty() {
        message.insert("android".into(), json!({ "notification": android }));
    }
    let mut aps = Map::new();
    if let Some(sound) = &content.sound {
        aps.insert("sound".into(), json!(sound));
    }
    if let Some(badge) = content.badge.as_ref().and_then(Value::as_u64) {
        aps.insert("badge".into(), json!(badge));
    }
    if !aps.is_empty() {
        message.insert("apns".into(), json!({ "payload": { "aps": aps } }));
    }
}

/// Whether the sender asked for immediate delivery: an explicit `priority`, else high urgency.
pub(crate) fn is_high_priority(options: &Options) -> bool {
    match options.priority.as_deref() {
        Some(p) => p.eq_ignore_ascii_case("high"),
        None => options.urgency == Urgency::High,
    }
}

/// The delivery part of a message for one device.
pub(crate) struct Delivery<'a> {
    pub token: &'a str,
    pub options: &'a Options,
    /// Seconds the message may still wait.
    pub ttl_secs: u32,
    /// Unix seconds of expiry, for APNs devices reached through FCM.
    pub expires_at_secs: i64,
    /// Whether the content part shows a notification (APNs requires priority 5 otherwise).
    pub visible: bool,
}

/// The full request body `{"message": ...}`: delivery fields with the content part merged on
/// top, so a sender's override of e.g. `android.priority` wins. The overrides are applied once
/// more (merge patches are idempotent) because their `null`s must also remove delivery fields,
/// which the content part never had.
pub(crate) fn request_body(delivery: &Delivery<'_>, content_message: &Value) -> Value {
    let options = delivery.options;
    let high = is_high_priority(options);
    let mut android =
        json!({ "priority": if high { "HIGH" } else { "NORMAL" }, "ttl": format!("{}s", delivery.ttl_secs) });
    let apns_priority = if high && delivery.visible { "10" } else { "5" };
    let mut apns_headers =
        json!({ "apns-priority": apns_priority, "apns-expiration": delivery.expires_at_secs.max(0).to_string() });
    if let Some(key) = &options.collapse_key {
        android["collapse_key"] = json!(key);
        apns_headers["apns-collapse-id"] = json!(key);
    }
    let mut message = json!({
        "token": delivery.token,
        "android": android,
        "apns": { "headers": apns_headers },
        "webpush": { "headers": { "TTL": delivery.ttl_secs.to_string(), "Urgency": options.urgency.as_str() } },
    });
    merge_patch(&mut message, content_message);
    if let Some(patch @ Value::Object(_)) = &options.fcm {
        merge_patch(&mut message, patch);
    }
    json!({ "message": message })
}
