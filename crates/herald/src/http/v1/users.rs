//! Users, by the app's own id.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_core::model::User;
use serde::Deserialize;
use serde_json::Value;

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, Backend, JsonBody};

/// `PUT /v1/users/{user}`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PutUser {
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Value>,
}

/// Creates (201) or updates (200) a user.
#[utoipa::path(put, path = "/v1/users/{user}", tag = "users", request_body = PutUser,
    responses((status = 201, body = User), (status = 200, body = User)), security(("secret_key" = [])))]
pub async fn put(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(user): ApiPath<String>,
    JsonBody(req): JsonBody<PutUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let up = app.svc.upsert_user(account.id, &user, req.properties).await?;
    let status = if up.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(up.value)))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{user}", tag = "users", responses((status = 200, body = User), (status = 404, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn get_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(app.svc.get_user(account.id, &user).await?))
}

/// Erases a user with their subscriptions and sessions.
#[utoipa::path(delete, path = "/v1/users/{user}", tag = "users", responses((status = 204)), security(("secret_key" = [])))]
pub async fn remove(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<StatusCode> {
    app.svc.delete_user(account.id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/users/{user}", get(get_one).put(put).delete(remove))
}
