//! API keys, signing keys and sessions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use herald_core::model::{ApiKey, KeyKind, SigningAlgorithm, SigningKey};
use herald_core::service::{KeyCreated, SessionCreated};
use serde::Deserialize;

use super::parse_enum;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, Backend, JsonBody};
use crate::http::{AppState, ListResponse};

/// `POST /v1/keys`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateKey {
    /// `secret`, `public` or `channel`.
    pub kind: String,
    /// Required for `channel` keys.
    pub channel_id: Option<String>,
}

/// `POST /v1/signing-keys`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateSigningKey {
    /// `RS256` or `ES256`; tokens must use exactly this algorithm.
    pub algorithm: String,
    pub public_key_pem: String,
    /// When set, tokens must carry this `aud` claim.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss` claim.
    pub issuer: Option<String>,
}

/// `POST /v1/sessions`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateSession {
    pub user: String,
    pub ttl_seconds: Option<i64>,
}

/// Mints an API key; the full key is in this response only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = KeyCreated), (status = 422, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn create_key(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyCreated>)> {
    let kind = parse_enum("kind", &req.kind, KeyKind::parse, KeyKind::expected)?;
    Ok((StatusCode::CREATED, Json(app.svc.create_key(account.id, kind, req.channel_id.as_deref()).await?)))
}

/// Lists the account's keys (prefixes only).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = ListResponse<ApiKey>)), security(("secret_key" = [])))]
pub async fn list_keys(
    Backend(account): Backend,
    State(app): State<AppState>,
) -> ApiResult<Json<ListResponse<ApiKey>>> {
    Ok(Json(ListResponse { data: app.svc.list_keys(account.id).await?, next_cursor: None }))
}

/// Revokes a key at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", responses((status = 204), (status = 404, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn revoke_key(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    app.svc.revoke_key(account.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers a public key that verifies user JWTs; its id is the JWT `kid`.
#[utoipa::path(post, path = "/v1/signing-keys", tag = "keys", request_body = CreateSigningKey,
    responses((status = 201, body = SigningKey)), security(("secret_key" = [])))]
pub async fn create_signing_key(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CreateSigningKey>,
) -> ApiResult<(StatusCode, Json<SigningKey>)> {
    let alg = parse_enum("algorithm", &req.algorithm, SigningAlgorithm::parse, SigningAlgorithm::expected)?;
    Ok((
        StatusCode::CREATED,
        Json(app.svc.create_signing_key(account.id, alg, &req.public_key_pem, req.audience, req.issuer).await?),
    ))
}

/// Lists signing keys.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "keys", responses((status = 200, body = ListResponse<SigningKey>)), security(("secret_key" = [])))]
pub async fn list_signing_keys(
    Backend(account): Backend,
    State(app): State<AppState>,
) -> ApiResult<Json<ListResponse<SigningKey>>> {
    Ok(Json(ListResponse { data: app.svc.list_signing_keys(account.id).await?, next_cursor: None }))
}

/// Deletes a signing key.
#[utoipa::path(delete, path = "/v1/signing-keys/{id}", tag = "keys", responses((status = 204)), security(("secret_key" = [])))]
pub async fn delete_signing_key(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    app.svc.delete_signing_key(account.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mints a session token for a user.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionCreated)), security(("secret_key" = [])))]
pub async fn create_session(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CreateSession>,
) -> ApiResult<(StatusCode, Json<SessionCreated>)> {
    Ok((StatusCode::CREATED, Json(app.svc.create_session(account.id, &req.user, req.ttl_seconds).await?)))
}

/// Ends a session.
#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "sessions", responses((status = 204)), security(("secret_key" = [])))]
pub async fn delete_session(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<StatusCode> {
    app.svc.delete_session(account.id, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/signing-keys", get(list_signing_keys).post(create_signing_key))
        .route("/v1/signing-keys/{id}", delete(delete_signing_key))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{session_id}", delete(delete_session))
}
