//! The operator API (`/admin/v1`): accounts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_core::model::{Account, AccountStatus};
use herald_core::service::{AccountCreated, page_limit, parse_cursor};
use herald_core::store::AccountPatch;
use serde::Deserialize;

use super::parse_enum;
use crate::http::error::ApiResult;
use crate::http::extract::{Admin, ApiPath, ApiQuery, Backend, JsonBody};
use crate::http::{AppState, ListResponse};

/// `POST /admin/v1/accounts`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateAccount {
    pub name: String,
    #[serde(default)]
    pub dev_mode: bool,
}

/// `PATCH /admin/v1/accounts/{id}`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateAccount {
    /// `active` or `paused`; a paused account's keys are refused with 403.
    pub status: Option<String>,
    pub dev_mode: Option<bool>,
    /// Requests per minute per credential; `null` restores the server default.
    #[serde(default, deserialize_with = "present")]
    pub rate_limit_per_minute: Option<Option<i64>>,
    /// Topic prefixes only the backend may add (`chat:` is always reserved).
    pub reserved_topic_prefixes: Option<Vec<String>>,
    /// The only topics clients may add (`*` matches any characters); `null` allows any topic
    /// that is not reserved.
    #[serde(default, deserialize_with = "present")]
    pub client_topic_patterns: Option<Option<Vec<String>>>,
    /// Origins whose pages may call the client surfaces (CORS); `null`: any origin.
    #[serde(default, deserialize_with = "present")]
    pub allowed_origins: Option<Option<Vec<String>>>,
}

/// `PATCH /v1/account`: what an account's backend may change about its own account.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateOwnAccount {
    pub reserved_topic_prefixes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub client_topic_patterns: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_origins: Option<Option<Vec<String>>>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Cursor pagination.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Creates an account with its first secret and public keys.
#[utoipa::path(post, path = "/admin/v1/accounts", tag = "admin", request_body = CreateAccount,
    responses((status = 201, body = AccountCreated), (status = 401, body = crate::http::openapi::ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    _: Admin,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CreateAccount>,
) -> ApiResult<(StatusCode, Json<AccountCreated>)> {
    Ok((StatusCode::CREATED, Json(app.svc.create_account(&req.name, req.dev_mode).await?)))
}

/// Lists accounts.
#[utoipa::path(get, path = "/admin/v1/accounts", tag = "admin", params(PageQuery),
    responses((status = 200, body = ListResponse<Account>)), security(("admin_token" = [])))]
pub async fn list(
    _: Admin,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListResponse<Account>>> {
    let page = app.svc.list_accounts(parse_cursor(q.cursor.as_deref())?, page_limit(q.limit)).await?;
    Ok(Json(ListResponse { data: page.items, next_cursor: page.next_cursor }))
}

/// One account.
#[utoipa::path(get, path = "/admin/v1/accounts/{id}", tag = "admin",
    responses((status = 200, body = Account), (status = 404, body = crate::http::openapi::ErrorBody)), security(("admin_token" = [])))]
pub async fn get_one(_: Admin, State(app): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<Account>> {
    Ok(Json(app.svc.get_account(id).await?))
}

/// Pauses or resumes an account.
#[utoipa::path(patch, path = "/admin/v1/accounts/{id}", tag = "admin", request_body = UpdateAccount,
    responses((status = 200, body = Account)), security(("admin_token" = [])))]
pub async fn update(
    _: Admin,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<UpdateAccount>,
) -> ApiResult<Json<Account>> {
    let status = req
        .status
        .as_deref()
        .map(|s| parse_enum("status", s, AccountStatus::parse, AccountStatus::expected))
        .transpose()?;
    let policy = app
        .svc
        .account_policy_patch(id, req.reserved_topic_prefixes, req.client_topic_patterns, req.allowed_origins)
        .await?;
    let patch =
        AccountPatch { status, dev_mode: req.dev_mode, rate_limit_per_minute: req.rate_limit_per_minute, policy };
    Ok(Json(app.svc.update_account(id, patch).await?))
}

/// Changes the calling account's client policy (topics clients may manage, allowed origins).
#[utoipa::path(patch, path = "/v1/account", tag = "accounts", request_body = UpdateOwnAccount,
    responses((status = 200, body = Account)), security(("secret_key" = [])))]
pub async fn update_own(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<UpdateOwnAccount>,
) -> ApiResult<Json<Account>> {
    let policy = app
        .svc
        .account_policy_patch(account.id, req.reserved_topic_prefixes, req.client_topic_patterns, req.allowed_origins)
        .await?;
    let patch = AccountPatch { policy, ..AccountPatch::default() };
    Ok(Json(app.svc.update_account(account.id, patch).await?))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/accounts", get(list).post(create))
        .route("/admin/v1/accounts/{id}", get(get_one).patch(update))
        .route("/v1/account", axum::routing::patch(update_own))
}
