//! Errors of the service layer. Every surface renders these in its own API's shape; the
//! native `/v1` shape is DESIGN.md section 4.

use serde::Serialize;

/// One invalid field of a request, as listed in `details.fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `settings.p256dh`.
    pub field: String,
    /// Stable machine-readable reason: `required`, `too_long`, `invalid`, `invalid_type`, …
    pub reason: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), reason, message: message.into() }
    }

    /// A required field that is missing or empty.
    pub fn required(field: &str) -> Self {
        Self::new(field, "required", format!("{field} is required"))
    }

    /// A field longer than its limit.
    pub fn too_long(field: &str, max: usize) -> Self {
        Self::new(field, "too_long", format!("{field} must be at most {max} characters"))
    }
}

/// Why a request could not be served. The variants are the stable error codes of DESIGN.md
/// section 4; the storage layer's failures arrive as [`ServiceError::Store`].
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: the request could not be parsed (`reason`: invalid_json / invalid_param / invalid_uuid).
    #[error("{message}")]
    BadRequest { reason: &'static str, param: Option<String>, message: String },
    /// 401: missing, invalid, revoked or expired credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed (paused account, wrong key kind).
    #[error("{message}")]
    Forbidden { message: String, required_scope: Option<&'static str>, reason: Option<&'static str> },
    /// 404: unknown id, or an id of another account (never 403: no existence leak).
    #[error("{resource} not found")]
    NotFound { resource: &'static str, id: String },
    /// 409: a state conflict.
    #[error("{message}")]
    Conflict { message: String, idempotency_key: Option<String>, current_status: Option<String> },
    /// 422: the body parsed but fields are invalid.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 429: the credential's request budget is spent.
    #[error("rate limit exceeded; retry in {retry_after} s")]
    RateLimited { limit: u32, window_secs: u32, retry_after: u64 },
    /// 410: the resource existed but is used up or expired (pairing codes).
    #[error("{0}")]
    Gone(String),
    /// 500: storage failure; the source chain is logged, never returned.
    #[error("storage error")]
    Store(#[from] StoreError),
    /// 500: anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A 404 for `resource` with the id the caller asked for.
    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound { resource, id: id.to_string() }
    }

    /// A 422 with a single field error.
    pub fn invalid(field: &str, reason: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, reason, message)])
    }

    /// A 400 for a malformed query or path parameter.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::BadRequest { reason: "invalid_param", param: Some(param.into()), message: message.into() }
    }

    /// A 403 for a credential of the wrong kind.
    pub fn forbidden(message: impl Into<String>, required_scope: Option<&'static str>) -> Self {
        Self::Forbidden { message: message.into(), required_scope, reason: None }
    }

    /// A 403 because the calling page's origin is not one the account allows (CORS).
    pub fn origin_not_allowed(origin: &str) -> Self {
        Self::Forbidden {
            message: format!("origin {origin} is not allowed for this account (allowed_origins)"),
            required_scope: None,
            reason: Some("origin_not_allowed"),
        }
    }
}

/// Errors of the storage layer. Unique-key violations are mapped here, at the store boundary,
/// so no caller ever parses a database message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// A stored value could not be decoded (corrupt JSON, unknown enum value).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The database cannot be reached right now (connection refused or lost, pool exhausted,
    /// server shutting down): answered 503 with `Retry-After`, never 500.
    #[error("database unavailable: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// A stored secret does not open under the configured master keys.
    #[error("stored secret: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    /// Any other database failure, with its source.
    #[error("database error: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
}
