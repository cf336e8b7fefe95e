//! What an APNs answer means for the delivery (DESIGN.md section 5): delivered, retry later,
//! the device token is dead, our channel configuration is wrong, or this message can never be
//! delivered.

use std::time::Duration;

use herald_core::delivery::Outcome;
use serde::Deserialize;

/// Apple's error body.
#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
}

/// The `reason` of an error body, or an empty string when there is none.
pub(crate) fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.reason).unwrap_or_default()
}

/// Whether Apple refused the provider token only because it is too old: the caller signs a new
/// one and tries again.
pub(crate) fn is_expired_token(status: u16, reason: &str) -> bool {
    status == 403 && reason == "ExpiredProviderToken"
}

/// Whether the answer blames the provider token, which is then dropped from the cache.
pub(crate) fn blames_token(reason: &str) -> bool {
    matches!(reason, "InvalidProviderToken" | "ExpiredProviderToken")
}

/// Maps a non-success answer to an [`Outcome`].
pub(crate) fn classify(status: u16, reason: &str, retry_after: Option<Duration>) -> Outcome {
    let text = if reason.is_empty() { format!("APNs answered {status}") } else { format!("APNs {status} {reason}") };
    match (status, reason) {
        (410, _) | (_, "Unregistered" | "BadDeviceToken") => Outcome::Gone { status, reason: text },
        // A token signed just now cannot be too old; if it still is, the clock is off.
        (_, "ExpiredProviderToken" | "TooManyProviderTokenUpdates" | "TooManyRequests" | "IdleTimeout") => {
            Outcome::Retry { status: Some(status), reason: text, retry_after }
        }
        (
            _,
            "InvalidProviderToken"
            | "MissingProviderToken"
            | "BadEnvironmentKeyInToken"
            | "DeviceTokenNotForTopic"
            | "TopicDisallowed"
            | "BadTopic"
            | "MissingTopic"
            | "BadCertificate"
            | "BadCertificateEnvironment"
            | "Forbidden",
        ) => Outcome::ChannelError { status: Some(status), reason: text },
        (429 | 500..=599, _) => Outcome::Retry { status: Some(status), reason: text, retry_after },
        // 403 without a known reason is about credentials; 413 and other 4xx about the message.
        (403, _) => Outcome::ChannelError { status: Some(status), reason: text },
        _ => Outcome::Failed { status: Some(status), reason: text },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Gone { .. } => "gone",
            Outcome::ChannelError { .. } => "channel",
            Outcome::Failed { .. } => "failed",
        }
    }

    #[test]
    fn error_table() {
        let table = [
            (410, "Unregistered", "gone"),
            (410, "", "gone"),
            (400, "BadDeviceToken", "gone"),
            (403, "InvalidProviderToken", "channel"),
            (403, "MissingProviderToken", "channel"),
            (403, "BadEnvironmentKeyInToken", "channel"),
            (403, "ExpiredProviderToken", "retry"),
            (400, "DeviceTokenNotForTopic", "channel"),
            (400, "TopicDisallowed", "channel"),
            (400, "BadTopic", "channel"),
            (400, "MissingTopic", "channel"),
            (403, "", "channel"),
            (429, "TooManyRequests", "retry"),
            (429, "TooManyProviderTokenUpdates", "retry"),
            (500, "InternalServerError", "retry"),
            (503, "ServiceUnavailable", "retry"),
            (503, "Shutdown", "retry"),
            (502, "", "retry"),
            (413, "PayloadTooLarge", "failed"),
            (400, "BadCollapseId", "failed"),
            (400, "BadExpirationDate", "failed"),
            (400, "BadMessageId", "failed"),
            (400, "BadPriority", "failed"),
            (400, "PayloadEmpty", "failed"),
            (400, "InvalidPushType", "failed"),
            (404, "BadPath", "failed"),
            (405, "MethodNotAllowed", "failed"),
        ];
        for (status, reason, expected) in table {
            assert_eq!(kind(classify(status, reason, None)), expected, "{status} {reason}");
        }
    }

    #[test]
    fn retry_after_and_reason_are_carried() {
        let outcome = classify(429, "TooManyRequests", Some(Duration::from_secs(7)));
        assert_eq!(
            outcome,
            Outcome::Retry {
                status: Some(429),
                reason: "APNs 429 TooManyRequests".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(classify(410, "", None), Outcome::Gone { status: 410, reason: "APNs answered 410".into() });
    }

    #[test]
    fn reason_is_read_from_the_body() {
        assert_eq!(reason(br#"{"reason":"BadDeviceToken"}"#), "BadDeviceToken");
        assert_eq!(reason(br#"{"reason":"Unregistered","timestamp":1700000000000}"#), "Unregistered");
        assert_eq!(reason(b"<html>"), "");
        assert!(is_expired_token(403, "ExpiredProviderToken"));
        assert!(!is_expired_token(403, "InvalidProviderToken"));
    }
}
