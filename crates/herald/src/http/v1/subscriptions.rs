//! Subscriptions, for the backend (any user of the account) and for clients (`/v1/me`, their
//! own user only), plus topics. Both audiences share the helpers below; only who decides the
//! user differs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use herald_core::model::{AccountPolicy, Environment, SubscriptionKind, SubscriptionStatus};
use herald_core::service::{Registration, SubscriptionView, page_limit, parse_cursor, parse_status};
use herald_core::store::{SubscriptionFilter, SubscriptionPatch};
use serde::Deserialize;
use serde_json::Value;

use super::browser::ClientSubscription;
use super::parse_enum;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, Backend, Client, JsonBody};
use crate::http::{AppState, ListResponse};

/// `POST …/subscriptions`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterSubscription {
    /// Defaults to the account's default channel of the type the settings imply.
    pub channel_id: Option<String>,
    /// Dedup key; defaults to the endpoint (Web Push) or token.
    pub identifier: Option<String>,
    /// Web Push `{endpoint, p256dh, auth}` (or `{endpoint, keys: {p256dh, auth}}`); APNs/FCM `{token}`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// `standard` or `voip` (APNs PushKit).
    pub kind: Option<String>,
    /// `production` or `sandbox` (APNs).
    pub environment: Option<String>,
    pub topics: Option<Vec<String>>,
}

/// `PATCH …/subscriptions/{id}`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PatchSubscription {
    pub muted: Option<bool>,
    pub topics: Option<Vec<String>>,
    /// `active` or `inactive`.
    pub status: Option<String>,
}

/// List filters and pagination.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub channel_id: Option<String>,
    pub status: Option<String>,
    pub topic: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

type Created = (StatusCode, Json<SubscriptionView>);

async fn register(
    app: &AppState,
    account_id: i64,
    user: &str,
    client_policy: Option<&AccountPolicy>,
    req: RegisterSubscription,
) -> ApiResult<Created> {
    let reg = Registration {
        channel_id: req.channel_id,
        identifier: req.identifier,
        settings: req.settings,
        kind: req
            .kind
            .as_deref()
            .map(|k| parse_enum("kind", k, SubscriptionKind::parse, SubscriptionKind::expected))
            .transpose()?,
        environment: req
            .environment
            .as_deref()
            .map(|e| parse_enum("environment", e, Environment::parse, Environment::expected))
            .transpose()?,
        topics: req.topics,
        client_policy: client_policy.cloned(),
    };
    let up = app.svc.register_subscription(account_id, user, reg).await?;
    let status = if up.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SubscriptionView::from(&up.value))))
}

async fn list(
    app: &AppState,
    account_id: i64,
    user: Option<String>,
    q: ListQuery,
) -> ApiResult<Json<ListResponse<SubscriptionView>>> {
    let filter = SubscriptionFilter {
        account_id,
        external_id: user,
        channel_id: q.channel_id,
        status: parse_status(q.status.as_deref())?,
        topic: q.topic,
        after_id: parse_cursor(q.cursor.as_deref())?,
        limit: page_limit(q.limit),
    };
    let page = app.svc.list_subscriptions(filter).await?;
    Ok(Json(ListResponse {
        data: page.items.iter().map(SubscriptionView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn patch(
    app: &AppState,
    account_id: i64,
    id: i64,
    user: Option<&str>,
    client_policy: Option<&AccountPolicy>,
    req: PatchSubscription,
) -> ApiResult<Json<SubscriptionView>> {
    let status = req
        .status
        .as_deref()
        .map(|s| parse_enum("status", s, SubscriptionStatus::parse, SubscriptionStatus::expected))
        .transpose()?;
    let patch = SubscriptionPatch { muted: req.muted, topics: req.topics, status };
    Ok(Json(SubscriptionView::from(&app.svc.update_subscription(account_id, id, user, client_policy, patch).await?)))
}

/// Registers a subscription for a user: 201 when created, 200 when it existed (updated and reactivated).
#[utoipa::path(post, path = "/v1/users/{user}/subscriptions", tag = "subscriptions", request_body = RegisterSubscription,
    responses((status = 201, body = SubscriptionView), (status = 200, body = SubscriptionView), (status = 422, body = crate::http::openapi::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn register_for_user(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(user): ApiPath<String>,
    JsonBody(req): JsonBody<RegisterSubscription>,
) -> ApiResult<Created> {
    register(&app, account.id, &user, None, req).await
}

/// A user's subscriptions.
#[utoipa::path(get, path = "/v1/users/{user}/subscriptions", tag = "subscriptions", params(ListQuery),
    responses((status = 200, body = ListResponse<SubscriptionView>)), security(("secret_key" = [])))]
pub async fn list_for_user(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<SubscriptionView>>> {
    list(&app, account.id, Some(user), q).await
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions",
    responses((status = 200, body = SubscriptionView), (status = 404, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn get_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(SubscriptionView::from(&app.svc.get_subscription(account.id, id, None).await?)))
}

/// Mutes, re-topics, or (de)activates a subscription.
#[utoipa::path(patch, path = "/v1/subscriptions/{id}", tag = "subscriptions", request_body = PatchSubscription,
    responses((status = 200, body = SubscriptionView)), security(("secret_key" = [])))]
pub async fn patch_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<PatchSubscription>,
) -> ApiResult<Json<SubscriptionView>> {
    patch(&app, account.id, id, None, None, req).await
}

/// Deletes a subscription.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", responses((status = 204)), security(("secret_key" = [])))]
pub async fn delete_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    app.svc.delete_subscription(account.id, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a topic to a subscription (idempotent).
#[utoipa::path(put, path = "/v1/subscriptions/{id}/topics/{name}", tag = "topics", responses((status = 200, body = SubscriptionView)), security(("secret_key" = [])))]
pub async fn add_topic(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath((id, name)): ApiPath<(i64, String)>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(SubscriptionView::from(&app.svc.set_topic(account.id, id, None, None, &name, true).await?)))
}

/// Removes a topic from a subscription (idempotent).
#[utoipa::path(delete, path = "/v1/subscriptions/{id}/topics/{name}", tag = "topics", responses((status = 200, body = SubscriptionView)), security(("secret_key" = [])))]
pub async fn remove_topic(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath((id, name)): ApiPath<(i64, String)>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(SubscriptionView::from(&app.svc.set_topic(account.id, id, None, None, &name, false).await?)))
}

/// Subscriptions carrying a topic.
#[utoipa::path(get, path = "/v1/topics/{name}/subscriptions", tag = "topics", params(ListQuery),
    responses((status = 200, body = ListResponse<SubscriptionView>)), security(("secret_key" = [])))]
pub async fn list_topic(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<SubscriptionView>>> {
    q.topic = Some(name);
    list(&app, account.id, None, q).await
}

/// Registers the calling user's browser or device.
#[utoipa::path(post, path = "/v1/me/subscriptions", tag = "me", request_body = RegisterSubscription,
    responses((status = 201, body = ClientSubscription), (status = 200, body = ClientSubscription)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn register_me(
    Client(c): Client,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<RegisterSubscription>,
) -> ApiResult<(StatusCode, Json<ClientSubscription>)> {
    let (status, Json(view)) = register(&app, c.account.id, &c.external_id, Some(&c.account.policy), req).await?;
    Ok((status, Json(ClientSubscription::new(&app, view).await?)))
}

/// The calling user's subscriptions.
#[utoipa::path(get, path = "/v1/me/subscriptions", tag = "me", params(ListQuery),
    responses((status = 200, body = ListResponse<SubscriptionView>)), security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn list_me(
    Client(c): Client,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<SubscriptionView>>> {
    list(&app, c.account.id, Some(c.external_id), q).await
}

/// One of the calling user's subscriptions.
#[utoipa::path(get, path = "/v1/me/subscriptions/{id}", tag = "me", responses((status = 200, body = SubscriptionView)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn get_me(
    Client(c): Client,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(SubscriptionView::from(&app.svc.get_subscription(c.account.id, id, Some(&c.external_id)).await?)))
}

/// Changes one of the calling user's subscriptions.
#[utoipa::path(patch, path = "/v1/me/subscriptions/{id}", tag = "me", request_body = PatchSubscription,
    responses((status = 200, body = SubscriptionView)), security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn patch_me(
    Client(c): Client,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<PatchSubscription>,
) -> ApiResult<Json<SubscriptionView>> {
    patch(&app, c.account.id, id, Some(&c.external_id), Some(&c.account.policy), req).await
}

/// Deletes one of the calling user's subscriptions.
#[utoipa::path(delete, path = "/v1/me/subscriptions/{id}", tag = "me", responses((status = 204)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn delete_me(
    Client(c): Client,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    app.svc.delete_subscription(c.account.id, id, Some(&c.external_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a topic to one of the calling user's subscriptions.
#[utoipa::path(put, path = "/v1/me/subscriptions/{id}/topics/{name}", tag = "me", responses((status = 200, body = SubscriptionView)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn add_topic_me(
    Client(c): Client,
    State(app): State<AppState>,
    ApiPath((id, name)): ApiPath<(i64, String)>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(SubscriptionView::from(
        &app.svc.set_topic(c.account.id, id, Some(&c.external_id), Some(&c.account.policy), &name, true).await?,
    )))
}

/// Removes a topic from one of the calling user's subscriptions.
#[utoipa::path(delete, path = "/v1/me/subscriptions/{id}/topics/{name}", tag = "me", responses((status = 200, body = SubscriptionView)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn remove_topic_me(
    Client(c): Client,
    State(app): State<AppState>,
    ApiPath((id, name)): ApiPath<(i64, String)>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(SubscriptionView::from(
        &app.svc.set_topic(c.account.id, id, Some(&c.external_id), Some(&c.account.policy), &name, false).await?,
    )))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{user}/subscriptions", get(list_for_user).post(register_for_user))
        .route("/v1/subscriptions/{id}", get(get_one).patch(patch_one).delete(delete_one))
        .route("/v1/subscriptions/{id}/topics/{name}", put(add_topic).delete(remove_topic))
        .route("/v1/topics/{name}/subscriptions", get(list_topic))
        .route("/v1/me/subscriptions", get(list_me).post(register_me))
        .route("/v1/me/subscriptions/{id}", get(get_me).patch(patch_me).delete(delete_me))
        .route("/v1/me/subscriptions/{id}/topics/{name}", put(add_topic_me).delete(remove_topic_me))
}
