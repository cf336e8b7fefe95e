//! What an FCM HTTP v1 answer means for the delivery (DESIGN.md section 5).

use std::time::Duration;

use herald_core::delivery::Outcome;
use serde::Deserialize;
use serde_json::Value;

/// The `@type` of the detail that carries FCM's own error code.
const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

/// The parts of a Google API error body that matter:
/// `{"error": {"code", "status", "message", "details": [{"@type", "errorCode"}]}}`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FcmError {
    /// The canonical status, e.g. `INVALID_ARGUMENT`.
    pub status: Option<String>,
    /// FCM's code from the details, e.g. `UNREGISTERED`; more specific than `status`.
    pub error_code: Option<String>,
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    status: Option<String>,
    message: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// Reads an error body; anything unreadable yields an empty [`FcmError`] and the HTTP status
/// decides alone.
pub(crate) fn parse_error(body: &[u8]) -> FcmError {
    let Ok(Body { error }) = serde_json::from_slice::<Body>(body) else { return FcmError::default() };
    let error_code = error
        .details
        .iter()
        .find(|d| d.get("@type").and_then(Value::as_str) == Some(FCM_ERROR_TYPE))
        .and_then(|d| d.get("errorCode")?.as_str())
        .map(str::to_owned);
    FcmError { status: error.status, error_code, message: error.message }
}

/// Maps a non-success answer to an [`Outcome`]. A 401 reaching this point already failed once
/// with a freshly fetched token, so it is the channel's credentials that are wrong.
pub(crate) fn classify(status: u16, error: &FcmError, retry_after: Option<Duration>) -> Outcome {
    let reason = describe(status, error);
    let code = error.error_code.as_deref().or(error.status.as_deref()).unwrap_or_default();
    match (status, code) {
        (_, "UNREGISTERED") | (404, _) | (_, "NOT_FOUND") => Outcome::Gone { status, reason },
        (_, "SENDER_ID_MISMATCH" | "THIRD_PARTY_AUTH_ERROR" | "PERMISSION_DENIED" | "UNAUTHENTICATED")
        | (401 | 403, _) => Outcome::ChannelError { status: Some(status), reason },
        (_, "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL") | (429 | 500..=599, _) => {
            Outcome::Retry { status: Some(status), reason, retry_after }
        }
        _ => Outcome::Failed { status: Some(status), reason },
    }
}

/// e.g. "FCM 404 UNREGISTERED: Requested entity was not found."
fn describe(status: u16, error: &FcmError) -> String {
    let mut text = format!("FCM {status}");
    if let Some(code) = error.error_code.as_deref().or(error.status.as_deref()) {
        text.push(' ');
        text.push_str(code);
    }
    if let Some(message) = error.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(message);
    }
    text
}

/// The message id from a success body `{"name": "projects/p/messages/<id>"}`.
pub(crate) fn message_name(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("name")?.as_str().map(str::to_owned)
}
