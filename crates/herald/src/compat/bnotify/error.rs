//! bnotify's error bodies: NestJS's `{"statusCode", "message", "error"}`, with the exact
//! messages its page documents, rendered from the service layer's errors.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::ServiceError;
use serde_json::{Value, json};

use crate::http::error::log_if_internal;

/// An error answered in bnotify's format.
#[derive(Debug)]
pub enum BnError {
    /// 400 with NestJS's message: a string, or the list of class-validator messages.
    BadRequest(Value),
    /// 401 `Channel api key is no valid.` (their spelling).
    Unauthorized,
    /// 404 with `Channel not found` or `Subscription not found`.
    NotFound(&'static str),
    /// 429 `ThrottlerException: Too Many Requests`, with `Retry-After` and the rate-limit headers.
    TooManyRequests(HeaderMap),
    /// 500, details logged only.
    Internal,
    /// 503 while the database is unreachable (with `Retry-After`).
    Unavailable,
}

/// The 400 of a path channel id that is not a channel id.
pub const CHANNEL_ID_NOT_VALID: &str = "Channel id not valid";
/// The 404 of a channel other than the key's, or one that no longer exists.
pub const CHANNEL_NOT_FOUND: &str = "Channel not found";
/// The 404 of a user with no active subscription in the channel.
pub const SUBSCRIPTION_NOT_FOUND: &str = "Subscription not found";

/// A class-validator message for the user id path parameter, from the service's field error.
fn iuid_message(reason: &str, message: &str) -> String {
    match reason {
        "required" => "iuid should not be empty".into(),
        "too_long" => {
            let max = herald_core::validate::MAX_EXTERNAL_ID;
            format!("iuid must be shorter than or equal to {max} characters")
        }
        _ => format!("iuid {message}"),
    }
}

impl From<ServiceError> for BnError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthenticated(_) | ServiceError::Forbidden { .. } => BnError::Unauthorized,
            ServiceError::NotFound { resource: "channel", .. } => BnError::NotFound(CHANNEL_NOT_FOUND),
            // A user unknown to the account has no subscription either.
            ServiceError::NotFound { .. } => BnError::NotFound(SUBSCRIPTION_NOT_FOUND),
            ServiceError::Validation(fields) => BnError::BadRequest(Value::Array(
                fields
                    .iter()
                    .map(|f| match f.field.as_str() {
                        "user" | "to.user" => iuid_message(f.reason, &f.message),
                        _ => f.message.clone(),
                    })
                    .map(Value::String)
                    .collect(),
            )),
            ServiceError::BadRequest { message, .. } | ServiceError::Conflict { message, .. } => {
                BnError::BadRequest(Value::String(message))
            }
            ServiceError::Gone(message) => BnError::BadRequest(Value::String(message)),
            ServiceError::RateLimited { limit, window_secs, retry_after } => {
                let policy = crate::http::limits::Policy { limit, window_secs };
                let decision = crate::http::limits::Decision::Limited { policy, retry_after_secs: retry_after };
                BnError::TooManyRequests(decision.headers())
            }
            ServiceError::Store(herald_core::StoreError::Unavailable(_)) => BnError::Unavailable,
            e @ (ServiceError::Store(_) | ServiceError::Internal(_)) => {
                log_if_internal(&e);
                BnError::Internal
            }
        }
    }
}

impl IntoResponse for BnError {
    fn into_response(self) -> Response {
        let (status, body, headers) = match self {
            BnError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, json!({"statusCode": 400, "message": message, "error": "Bad Request"}), None)
            }
            BnError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"statusCode": 401, "message": "Channel api key is no valid.", "error": "Unauthorized"}),
                None,
            ),
            BnError::NotFound(message) => {
                (StatusCode::NOT_FOUND, json!({"statusCode": 404, "message": message, "error": "Not Found"}), None)
            }
            BnError::TooManyRequests(headers) => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}),
                Some(headers),
            ),
            BnError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"statusCode": 503, "message": "Service Unavailable", "error": "Service Unavailable"}),
                None,
            ),
            BnError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"statusCode": 500, "message": "Internal server error"}),
                None,
            ),
        };
        let mut res = (status, Json(body)).into_response();
        if let Some(h) = headers {
            res.headers_mut().extend(h);
        }
        res
    }
}
