//! The native API, one file per resource.

pub mod admin;
pub mod browser;
pub mod channels;
pub mod credentials;
pub mod notifications;
pub mod pairing;
pub mod subscriptions;
pub mod users;
pub mod webhooks;

use axum::Router;
use herald_core::ServiceError;

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .merge(admin::router())
        .merge(browser::router())
        .merge(credentials::router())
        .merge(channels::router())
        .merge(users::router())
        .merge(subscriptions::router())
        .merge(notifications::router())
        .merge(pairing::router())
        .merge(webhooks::router())
}

/// Parses an enum field of a request body, naming the accepted values on failure.
pub(crate) fn parse_enum<T>(
    field: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<T, ServiceError> {
    parse(value)
        .ok_or_else(|| ServiceError::invalid(field, "invalid", format!("{field} must be one of {}", expected())))
}
