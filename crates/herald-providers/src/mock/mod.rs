//! Local stand-ins for APNs and FCM, for integration tests and benchmarks (`testing` feature).
//!
//! Each mock listens on `127.0.0.1:0`, checks what Herald sends the way the real service would
//! (provider JWTs, OAuth tokens, required headers, payload limits), records the requests it
//! accepted, and answers either with a scripted [`MockResponse`] or with the service's success
//! answer. Point a channel at a mock with its `endpoint` setting ([`fixtures`] builds matching
//! channel configs).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use herald_providers::mock::{MockApns, MockApnsConfig, MockResponse, fixtures};
//!
//! let apns = MockApns::start(MockApnsConfig::with_test_key()).await?;
//! let channel_config = fixtures::apns_channel_config(apns.base_url());
//! // ... create an APNs channel with `channel_config` and send ...
//! apns.push_response(MockResponse::apns_error(410, "Unregistered")); // next request only
//! assert!(apns.requests().iter().all(|r| r.header("apns-topic") == Some(fixtures::TEST_BUNDLE_ID)));
//! # Ok(()) }
//! ```

mod apns;
mod control;
mod fcm;
pub mod fixtures;
mod server;

#[cfg(test)]
mod tests;

use std::time::{Instant, SystemTime};

use hyper::HeaderMap;
use serde_json::Value;

pub use apns::{MockApns, MockApnsConfig};
pub use fcm::{MockFcm, MockFcmConfig};

/// A request a mock received.
#[derive(Debug, Clone)]
pub struct MockRequest {
    pub method: String,
    /// Path and query, e.g. `/3/device/ab12...`.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When the request was complete, for latency measurements within one process.
    pub received_at: Instant,
    /// The same moment as wall-clock time, comparable with Herald's stored timestamps.
    pub received_at_system: SystemTime,
    /// The status the mock answered.
    pub status: u16,
    /// Why the mock refused the request (failed verification), if it did.
    pub rejection: Option<String>,
}

impl MockRequest {
    /// A header's value, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// An answer a mock gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl MockResponse {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::new(status).with_header("content-type", "application/json").with_body(body.to_string().into_bytes())
    }

    /// APNs' error answer `{"reason": reason}`.
    pub fn apns_error(status: u16, reason: &str) -> Self {
        Self::json(status, &serde_json::json!({ "reason": reason }))
    }

    /// A Google API error answer; `error_code` is FCM's detail code (e.g. `UNREGISTERED`).
    pub fn fcm_error(status: u16, grpc_status: &str, error_code: Option<&str>) -> Self {
        let details: Vec<Value> = error_code
            .map(|code| {
                serde_json::json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})
            })
            .into_iter()
            .collect();
        let error = serde_json::json!({"error": {
            "code": status, "message": format!("mock {grpc_status}"), "status": grpc_status, "details": details,
        }});
        Self::json(status, &error)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// `<status> <body>`, the `rejection` recorded for a refused request.
    fn describe(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }

    /// Whether a header is set (case-insensitive).
    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}
