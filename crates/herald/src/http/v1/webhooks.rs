//! Webhook endpoints of an account (Standard Webhooks signing).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_core::service::{WebhookInput, WebhookWithSecret};
use herald_core::webhooks::Webhook;
use herald_providers::webhook::generate_secret;
use serde::Deserialize;
use serde_json::Value;

use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, Backend, JsonBody};
use crate::http::{AppState, ListResponse};

/// `POST /v1/webhooks` and `PATCH /v1/webhooks/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct WebhookRequest {
    /// `https` URL (the SSRF guard applies).
    pub url: Option<String>,
    /// Event types: `subscription.created`, `subscription.updated`, `subscription.deactivated`,
    /// `subscription.deleted`, `notification.delivered`, `notification.failed`, `webhook.disabled`.
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// `PATCH` only: replace the signing secret; the new one is in the answer.
    #[serde(default)]
    pub rotate_secret: bool,
}

impl From<WebhookRequest> for WebhookInput {
    fn from(r: WebhookRequest) -> Self {
        WebhookInput { url: r.url, events: r.events, enabled: r.enabled, rotate_secret: r.rotate_secret }
    }
}

/// Registers a webhook; the `whsec_…` secret is shown in this answer only.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, body = WebhookWithSecret), (status = 422, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn create(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    Ok((StatusCode::CREATED, Json(app.svc.create_webhook(account.id, req.into(), generate_secret()).await?)))
}

/// Lists webhooks (no secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", responses((status = 200, body = ListResponse<Webhook>)), security(("secret_key" = [])))]
pub async fn list(Backend(account): Backend, State(app): State<AppState>) -> ApiResult<Json<ListResponse<Webhook>>> {
    Ok(Json(ListResponse { data: app.svc.list_webhooks(account.id).await?, next_cursor: None }))
}

/// One webhook, with its failure state.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", responses((status = 200, body = Webhook)), security(("secret_key" = [])))]
pub async fn get_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(app.svc.get_webhook(account.id, &id).await?))
}

/// Changes, re-enables, or rotates the secret of a webhook.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookRequest, responses((status = 200, body = Object)), security(("secret_key" = [])))]
pub async fn update(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    JsonBody(req): JsonBody<WebhookRequest>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.svc.update_webhook(account.id, &id, req.into(), generate_secret()).await?))
}

/// Deletes a webhook.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", responses((status = 204)), security(("secret_key" = [])))]
pub async fn remove(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    app.svc.delete_webhook(account.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", get(get_one).patch(update).delete(remove))
}
