//! JSON helpers shared by the APNs and FCM payload builders.

use serde_json::{Map, Value};

/// Merges `patch` into `target` with JSON Merge Patch semantics (RFC 7396): objects merge
/// recursively, `null` removes a key, anything else replaces. This is how a sender's
/// per-provider overrides (`options.apns`, `options.fcm`) adjust the payload Herald built, and
/// `null` is the one way to drop a field Herald would otherwise send.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Refuses a serialized payload over `limit` bytes with a message naming the service, e.g.
/// "APNs payload is 4200 bytes; the limit is 4096".
pub(crate) fn check_size(service: &str, len: usize, limit: usize) -> Result<(), String> {
    if len > limit { Err(format!("{service} payload is {len} bytes; the limit is {limit}")) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"});
        merge_patch(&mut doc, &json!({"a": {"b": 5, "n": {"m": true}}, "d": [2, 3], "e": null, "f": 0}));
        assert_eq!(doc, json!({"a": {"b": 5, "c": 2, "n": {"m": true}}, "d": [2, 3], "f": 0}));
    }

    #[test]
    fn merge_patch_replaces_non_objects() {
        let mut doc = json!({"a": 1});
        merge_patch(&mut doc, &json!({"a": {"b": null, "c": 1}}));
        assert_eq!(doc, json!({"a": {"c": 1}}));
        merge_patch(&mut doc, &json!("scalar"));
        assert_eq!(doc, json!("scalar"));
    }

    #[test]
    fn size_errors_name_the_service_and_limit() {
        assert_eq!(check_size("APNs", 4096, 4096), Ok(()));
        assert_eq!(check_size("APNs", 4200, 4096), Err("APNs payload is 4200 bytes; the limit is 4096".into()));
    }
}
