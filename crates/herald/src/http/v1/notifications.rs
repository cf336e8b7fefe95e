//! Sending notifications, reading them back with their deliveries, and the inbox.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::ServiceError;
use herald_core::delivery::{Content, Options, Urgency};
use herald_core::model::Delivery;
use herald_core::service::{MAX_TTL, SendAccepted, SendRequest, SendTarget, page_limit, parse_cursor};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::admin::PageQuery;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, Backend, Client, parse_json};
use crate::http::{AppState, ListResponse};

/// `POST /v1/notifications`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendBody {
    /// Exactly one of `{"user"}`, `{"users": [...]}` (≤1000), `{"subscription"}`, `{"topic"}`, `{"channel_id"}`.
    #[schema(value_type = Object)]
    pub to: Value,
    #[serde(flatten)]
    pub content: Content,
    /// Seconds; default and maximum 4 weeks.
    pub ttl: Option<u32>,
    /// `very-low`, `low`, `normal` (default) or `high`.
    pub urgency: Option<String>,
    pub collapse_key: Option<String>,
    /// `high` or `normal`.
    pub priority: Option<String>,
    /// RFC 3339 time to deliver at (scheduled send).
    pub send_at: Option<String>,
    /// Channel types or ids to restrict the send to.
    pub channels: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub apns: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub fcm: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub web_push: Option<Value>,
}

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::invalid(field, "invalid", message)
}

fn parse_target(to: &Value) -> Result<SendTarget, ServiceError> {
    let obj = to.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        invalid("to", "to must be an object with exactly one of user, users, subscription, topic, channel_id")
    })?;
    let (key, value) = obj.iter().next().expect("one entry");
    let string = |field: &str| {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ServiceError::invalid(field, "invalid_type", format!("{field} must be a string")))
    };
    Ok(match key.as_str() {
        "user" => SendTarget::User(string("to.user")?),
        "users" => SendTarget::Users(
            value
                .as_array()
                .and_then(|a| a.iter().map(|u| u.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| {
                    ServiceError::invalid("to.users", "invalid_type", "to.users must be an array of strings")
                })?,
        ),
        "subscription" => SendTarget::Subscription(value.as_i64().ok_or_else(|| {
            ServiceError::invalid("to.subscription", "invalid_type", "to.subscription must be an integer id")
        })?),
        "topic" => SendTarget::Topic(string("to.topic")?),
        "channel_id" => SendTarget::Channel(string("to.channel_id")?),
        other => return Err(invalid("to", &format!("unknown target {other:?}"))),
    })
}

fn parse_urgency(u: Option<&str>) -> Result<Urgency, ServiceError> {
    match u {
        None => Ok(Urgency::Normal),
        Some(u) => serde_json::from_value(Value::String(u.into()))
            .map_err(|_| invalid("urgency", "urgency must be very-low, low, normal or high")),
    }
}

fn parse_send_at(s: Option<&str>) -> Result<Option<i64>, ServiceError> {
    s.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|_| invalid("send_at", "send_at must be an RFC 3339 timestamp"))
    })
    .transpose()
}

/// Builds the service request from the raw body and headers.
pub fn send_request(raw: &[u8], headers: &HeaderMap) -> ApiResult<SendRequest> {
    let canonical: Value = parse_json(raw)?;
    let body: SendBody = parse_json(raw)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| invalid("Idempotency-Key", "Idempotency-Key must be printable ASCII"))?;
    if idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(invalid("Idempotency-Key", "Idempotency-Key must be 1-255 characters").into());
    }
    let options = Options {
        ttl: body.ttl.unwrap_or(MAX_TTL),
        urgency: parse_urgency(body.urgency.as_deref())?,
        collapse_key: body.collapse_key,
        priority: body.priority,
        apns: body.apns,
        fcm: body.fcm,
        web_push: body.web_push,
    };
    Ok(SendRequest {
        to: parse_target(&body.to)?,
        content: body.content,
        options,
        send_at: parse_send_at(body.send_at.as_deref())?,
        channels: body.channels,
        idempotency_key,
        request_fingerprint: canonical.to_string(),
    })
}

/// Sends a notification. 202 once it and its deliveries are durable; broadcasts fan out after.
#[utoipa::path(post, path = "/v1/notifications", tag = "notifications", request_body = SendBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays within 24 h return the first response")),
    responses((status = 202, body = SendAccepted), (status = 409, body = crate::http::openapi::ErrorBody), (status = 422, body = crate::http::openapi::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn send(
    Backend(account): Backend,
    State(app): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<SendAccepted>)> {
    let req = send_request(&raw, &headers)?;
    Ok((StatusCode::ACCEPTED, Json(app.svc.send_notification(account.id, req).await?)))
}

/// A notification with counts by status and a page of its deliveries (`cursor`, `limit`).
#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "notifications", params(PageQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::http::openapi::ErrorBody)), security(("secret_key" = [])))]
pub async fn get_one(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let after = parse_cursor(q.cursor.as_deref())?;
    Ok(Json(app.svc.get_notification(account.id, &id, after, page_limit(q.limit)).await?))
}

/// The account's notifications, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", params(PageQuery), responses((status = 200, body = Object)), security(("secret_key" = [])))]
pub async fn list(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (data, next) = app.svc.list_notifications(account.id, q.cursor.as_deref(), page_limit(q.limit)).await?;
    Ok(Json(serde_json::json!({"data": data, "next_cursor": next})))
}

/// Deliveries to one subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}/deliveries", tag = "notifications", params(PageQuery),
    responses((status = 200, body = ListResponse<Delivery>)), security(("secret_key" = [])))]
pub async fn subscription_deliveries(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListResponse<Delivery>>> {
    let page = app
        .svc
        .subscription_deliveries(account.id, id, parse_cursor(q.cursor.as_deref())?, page_limit(q.limit))
        .await?;
    Ok(Json(ListResponse { data: page.items, next_cursor: page.next_cursor }))
}

async fn inbox(app: &AppState, account_id: i64, user: &str, q: PageQuery) -> ApiResult<Json<Value>> {
    let (data, next) = app.svc.inbox(account_id, user, parse_cursor(q.cursor.as_deref())?, page_limit(q.limit)).await?;
    Ok(Json(serde_json::json!({"data": data, "next_cursor": next})))
}

/// The calling user's notifications, newest first, with `read_at`.
#[utoipa::path(get, path = "/v1/me/notifications", tag = "me", params(PageQuery), responses((status = 200, body = Object)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn my_inbox(
    Client(c): Client,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    inbox(&app, c.account.id, &c.external_id, q).await
}

/// Marks one of the calling user's notifications read.
#[utoipa::path(post, path = "/v1/me/notifications/{id}/read", tag = "me", responses((status = 200, body = Object)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn my_read(
    Client(c): Client,
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.svc.mark_read(c.account.id, &c.external_id, &id).await?))
}

/// A user's notifications, newest first.
#[utoipa::path(get, path = "/v1/users/{user}/notifications", tag = "users", params(PageQuery), responses((status = 200, body = Object)), security(("secret_key" = [])))]
pub async fn user_inbox(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    inbox(&app, account.id, &user, q).await
}

/// Marks a user's notification read.
#[utoipa::path(post, path = "/v1/users/{user}/notifications/{id}/read", tag = "users", responses((status = 200, body = Object)), security(("secret_key" = [])))]
pub async fn user_read(
    Backend(account): Backend,
    State(app): State<AppState>,
    ApiPath((user, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.svc.mark_read(account.id, &user, &id).await?))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list).post(send))
        .route("/v1/notifications/{id}", get(get_one))
        .route("/v1/subscriptions/{id}/deliveries", get(subscription_deliveries))
        .route("/v1/me/notifications", get(my_inbox))
        .route("/v1/me/notifications/{id}/read", post(my_read))
        .route("/v1/users/{user}/notifications", get(user_inbox))
        .route("/v1/users/{user}/notifications/{id}/read", post(user_read))
}
