//! Channels.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_core::model::ChannelType;
use herald_core::service::{ChannelInput, ChannelView};
use serde::Deserialize;
use serde_json::Value;

use super::parse_enum;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, Backend, JsonBody};
use crate::http::{AppState, ListResponse};

/// `POST /v1/channels` and `PATCH /v1/channels/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChannelRequest {
    pub name: Option<String>,
    /// `web_push`, `apns` or `fcm` (create only).
    #[serde(rename = "type")]
    pub channel_type: Option<String>,
    /// Per type. web_push: `subject`; apns: `team_id`, `key_id`, `private_key`, `bundle_id`,
    /// `environment`; fcm: `service_account`. All: optional `endpoint` (provider base URL).
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// `true` makes this channel its type's default.
    pub is_default: Option<bool>,
}

impl ChannelRequest {
    fn into_input(self) -> Result<ChannelInput, herald_core::ServiceError> {
        let channel_type = self
            .channel_type
            .as_deref()
            .map(|t| parse_enum("type", t, ChannelType::parse, ChannelType::expected))
            .transpose()?;
        Ok(ChannelInput { name: self.name, channel_type, config: self.config, is_default: self.is_default })
    }
}

/// Creates a channel. Web Push channels get a VAPID key pair; secrets are never returned.
#[utoipa::path(post, path = "/v1/channels", tag = "channels", request_body = ChannelRequest,
    responses((status = 201, body = ChannelView), (status = 422, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn create(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<ChannelRequest>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let channel = app.svc.create_channel(account.id, req.into_input()?).await?;
    Ok((StatusCode::CREATED, Json(ChannelView::from(&channel))))
}

/// Lists channels.
#[utoipa::path(get, path = "/v1/channels", tag = "channels", responses((status = 200, body = ListResponse<ChannelView>)), security(("secret_key" = [])))]
pub async fn list(
    Backend(account): Backend,
    State(app): State<AppState>,
) -> ApiResult<Json<ListResponse<ChannelView>>> {
    let data = app.svc.list_channels(account.id).await?.iter().map(ChannelView::from).collect();
    Ok(Json(ListResponse { data, next_cursor: None }))
}

/// One channel, with its health.
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels", responses((status = 200, body = ChannelView), (status = 404, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn get_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(ChannelView::from(&app.svc.channel(account.id, &id).await?)))
}

/// Renames, reconfigures, or makes a channel the default.
#[utoipa::path(patch, path = "/v1/channels/{id}", tag = "channels", request_body = ChannelRequest, responses((status = 200, body = ChannelView)), security(("secret_key" = [])))]
pub async fn update(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    JsonBody(req): JsonBody<ChannelRequest>,
) -> ApiResult<Json<ChannelView>> {
    let channel = app.svc.update_channel(account.id, &id, req.into_input()?).await?;
    Ok(Json(ChannelView::from(&channel)))
}

/// Deletes a channel; its subscriptions become inactive (`channel_deleted`).
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels", responses((status = 204)), security(("secret_key" = [])))]
pub async fn remove(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    app.svc.delete_channel(account.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/channels", get(list).post(create))
        .route("/v1/channels/{id}", get(get_one).patch(update).delete(remove))
}
