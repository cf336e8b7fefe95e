//! What a browser receives, before encryption. Two shapes:
//!
//! - **Herald's** (the default): the notification's content (`title`, `body`, `icon`, `image`,
//!   `badge`, `tag`, `url`, `actions`, `data`) plus `herald: {notification_id, delivery_id,
//!   receipt}`, which Herald's service worker (`/sdk/herald-sw.js`) shows and reports receipts for.
//! - **Declarative Web Push** (Safari 18.4+, shown without running a service worker):
//!   `{"web_push": 8030, "notification": {title, body, navigate, icon, image, tag, actions,
//!   data: {herald, app}}, "app_badge"?, "mutable": true}`. Chosen by the channel's
//!   `payload_format: "declarative"` or a send's `web_push.declarative: true`; `navigate` is the
//!   send's `url`, else the channel's `default_url`. `mutable` lets a service worker, where one
//!   runs, rewrite it (and so report receipts).
//!
//! The sender's `web_push` object is merged last (RFC 7396), into whichever shape is sent.

use herald_core::delivery::{Content, Job, Options};
use serde_json::{Map, Value, json};

use crate::json::merge_patch;

/// Space kept for the `herald` block when checking a payload's size before it is sent: ids and a
/// receipt token of the longest form, with JSON framing.
pub const HERALD_BLOCK_RESERVE: usize = 180;

/// Whether a send to this channel uses the declarative shape.
pub fn is_declarative(channel_config: &Value, options: &Options) -> bool {
    let per_send = options.web_push.as_ref().and_then(|w| w.get("declarative")).and_then(Value::as_bool);
    per_send.unwrap_or_else(|| channel_config.get("payload_format").and_then(Value::as_str) == Some("declarative"))
}

/// The `herald` block: what the service worker needs to report receipts.
fn herald_block(job: &Job) -> Value {
    let mut h = json!({"notification_id": job.notification_id, "delivery_id": job.delivery_id});
    if let Some(receipt) = &job.receipt {
        h["receipt"] = json!(receipt);
    }
    h
}

/// The sender's `web_push` overrides, without Herald's own switch.
fn overrides(options: &Options) -> Option<Value> {
    let mut o = options.web_push.clone()?;
    if let Some(obj) = o.as_object_mut() {
        obj.remove("declarative");
    }
    Some(o)
}

/// The payload for one delivery.
pub fn payload(job: &Job) -> Vec<u8> {
    let default_url = job.channel.config.get("default_url").and_then(Value::as_str);
    let herald = herald_block(job);
    let mut value = if is_declarative(&job.channel.config, &job.options) {
        declarative(&job.content, default_url, herald)
    } else {
        herald_shape(&job.content, herald)
    };
    if let Some(extra) = overrides(&job.options) {
        merge_patch(&mut value, &extra);
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The larger of the two shapes for `content`, with room for the `herald` block: what a size
/// check before sending must assume.
pub fn largest(content: &Content, options: &Options) -> usize {
    let placeholder = json!({});
    let mut sizes = [herald_shape(content, placeholder.clone()), declarative(content, Some(""), placeholder)];
    for v in &mut sizes {
        if let Some(extra) = overrides(options) {
            merge_patch(v, &extra);
        }
    }
    sizes.iter().map(|v| v.to_string().len()).max().unwrap_or(0) + HERALD_BLOCK_RESERVE
}

fn herald_shape(content: &Content, herald: Value) -> Value {
    let mut value = serde_json::to_value(content).unwrap_or_else(|_| json!({}));
    value["herald"] = herald;
    value
}

fn declarative(content: &Content, default_url: Option<&str>, herald: Value) -> Value {
    let mut n = Map::new();
    n.insert("title".into(), json!(content.title.as_deref().unwrap_or_default()));
    let navigate = content.url.as_deref().or(default_url).unwrap_or_default();
    n.insert("navigate".into(), json!(navigate));
    for (key, value) in
        [("body", &content.body), ("icon", &content.icon), ("image", &content.image), ("tag", &content.tag)]
    {
        if let Some(v) = value {
            n.insert(key.into(), json!(v));
        }
    }
    if let Some(Value::Array(actions)) = &content.actions {
        // Declarative actions navigate; each keeps its id so a service worker can report it.
        let actions: Vec<Value> = actions
            .iter()
            .map(|a| {
                let mut a = a.clone();
                if a.get("navigate").is_none() {
                    a["navigate"] = json!(a.get("url").and_then(Value::as_str).unwrap_or(navigate));
                }
                a
            })
            .collect();
        n.insert("actions".into(), Value::Array(actions));
    }
    let mut data = json!({"herald": herald});
    if let Some(app) = &content.data {
        data["app"] = app.clone();
    }
    n.insert("data".into(), data);
    let mut value = json!({"web_push": 8030, "notification": n, "mutable": true});
    if let Some(badge) = content.badge.as_ref().and_then(Value::as_u64) {
        value["app_badge"] = json!(badge);
    }
    value
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_core::model::SubscriptionKind;

    use super::*;
    use crate::test_support::{channel, job};

    fn content() -> Content {
        Content {
            title: Some("Hi".into()),
            body: Some("There".into()),
            url: Some("https://app.example/x".into()),
            data: Some(json!({"k": 1})),
            badge: Some(json!(3)),
            actions: Some(json!([{"action": "open", "title": "Open"}])),
            ..Default::default()
        }
    }

    #[test]
    fn herald_payloads_carry_the_receipt() {
        let mut j = job(
            channel(herald_core::model::ChannelType::WebPush, json!({})),
            "https://p/1",
            SubscriptionKind::Standard,
            content(),
            Options::default(),
        );
        j.receipt = Some("hr1.x.y".into());
        let v: Value = serde_json::from_slice(&payload(&j)).unwrap();
        assert_eq!(v["title"], "Hi");
        assert_eq!(v["herald"]["receipt"], "hr1.x.y");
        assert_eq!(v["herald"]["notification_id"], "ntf_test");
        assert!(v.get("web_push").is_none());
    }

    #[test]
    fn declarative_payloads_follow_the_safari_shape() {
        let options = Options { web_push: Some(json!({"declarative": true})), ..Default::default() };
        let mut j = job(
            channel(herald_core::model::ChannelType::WebPush, json!({})),
            "https://p/1",
            SubscriptionKind::Standard,
            content(),
            options,
        );
        j.receipt = Some("hr1.x.y".into());
        let v: Value = serde_json::from_slice(&payload(&j)).unwrap();
        assert_eq!(v["web_push"], 8030);
        assert_eq!(v["mutable"], true);
        assert_eq!(v["app_badge"], 3);
        assert_eq!(v["notification"]["navigate"], "https://app.example/x");
        assert_eq!(v["notification"]["actions"][0]["navigate"], "https://app.example/x");
        assert_eq!(v["notification"]["data"]["herald"]["receipt"], "hr1.x.y");
        assert_eq!(v["notification"]["data"]["app"]["k"], 1);
        // The channel's format and default URL apply when the send says nothing.
        let config = json!({"payload_format": "declarative", "default_url": "https://app.example/"});
        let c = Content { url: None, ..content() };
        let j = job(
            channel(herald_core::model::ChannelType::WebPush, config),
            "https://p/1",
            SubscriptionKind::Standard,
            c,
            Options::default(),
        );
        let v: Value = serde_json::from_slice(&payload(&j)).unwrap();
        assert_eq!(v["notification"]["navigate"], "https://app.example/");
        assert!(largest(&content(), &Options::default()) > payload(&j).len());
        let _ = Arc::strong_count(&j.channel);
    }
}
