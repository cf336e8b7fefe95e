//! The notiflows surface (`seeds/001`): the user API's channel subscriptions, for the current
//! user only. `x-notiflows-api-key` (`pk_…`) plus `x-notiflows-user-key` (a user JWT signed by
//! one of the account's signing keys; `exp` recommended, not required) or, in dev mode,
//! `x-notiflows-user-id`. Errors are Herald's native format, which is notiflows' own.

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, post};
use axum::{Json, Router};
use herald_core::ServiceError;
use herald_core::clock::rfc3339;
use herald_core::jwt::ExpPolicy;
use herald_core::keys::lookup_prefix;
use herald_core::model::{Subscription, SubscriptionStatus};
use herald_core::service::{ClientCtx, Registration, page_limit, parse_cursor};
use herald_core::store::SubscriptionFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiPath, ApiQuery, JsonBody};
use crate::http::{AppState, ListResponse};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/user/v1/channels/{channel_id}/subscriptions", post(create).get(list))
        .route("/user/v1/channels/{channel_id}/subscriptions/{id}", delete(remove))
}

/// The current user, authenticated by notiflows' headers.
struct User(ClientCtx);

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

impl<S: Send + Sync> FromRequestParts<S> for User
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = AppState::from_ref(state);
        let key = header(parts, "x-notiflows-api-key").ok_or_else(|| {
            ApiError(ServiceError::Unauthenticated("missing credentials: send x-notiflows-api-key".into()))
        })?;
        let user_key = header(parts, "x-notiflows-user-key");
        let user_id = header(parts, "x-notiflows-user-id");
        let ctx = app.svc.authenticate_client(key, user_key, user_id, ExpPolicy::Optional).await?;
        // The native API's budgets: per verified user of a public key, or per key in dev mode
        // (a plain user id is client-supplied and never selects a budget).
        let credential = match user_key {
            Some(_) => format!("pk:{}:{}", lookup_prefix(key), ctx.external_id),
            None => format!("pk:{}", lookup_prefix(key)),
        };
        app.limit(&ctx.account, &credential)?;
        Ok(User(ctx))
    }
}

/// The channel id of the path: a UUID, normalised to Herald's lowercase form. Anything else is
/// 400 `invalid_uuid` (the page types it "Channel ID (UUID)").
fn channel_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw).map(|u| u.to_string()).map_err(|_| {
        ApiError(ServiceError::BadRequest {
            reason: "invalid_uuid",
            param: Some("channel_id".into()),
            message: "channel_id must be a UUID".into(),
        })
    })
}

/// Request body of *Add a channel subscription*.
#[derive(Deserialize)]
struct AddSubscription {
    /// The dedup key; defaults to the endpoint (Web Push) or token.
    identifier: Option<String>,
    settings: Value,
}

/// A channel subscription as notiflows shows it.
#[derive(Serialize)]
struct ChannelSubscription {
    channel_id: String,
    created_at: String,
    id: String,
    identifier: String,
    settings: Value,
    updated_at: String,
}

impl From<&Subscription> for ChannelSubscription {
    fn from(s: &Subscription) -> Self {
        ChannelSubscription {
            channel_id: s.channel_id.clone(),
            created_at: rfc3339(s.created_at),
            id: s.id.to_string(),
            identifier: s.identifier.clone(),
            settings: s.settings.clone(),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// `POST /user/v1/channels/{channel_id}/subscriptions`: 201 when created, 200 when the user
/// already had this identifier on the channel (settings updated in place, reactivated).
#[tracing::instrument(skip_all)]
async fn create(
    User(user): User,
    State(app): State<AppState>,
    ApiPath(channel): ApiPath<String>,
    JsonBody(body): JsonBody<AddSubscription>,
) -> ApiResult<(StatusCode, Json<ChannelSubscription>)> {
    let reg = Registration {
        channel_id: Some(channel_id(&channel)?),
        identifier: body.identifier,
        settings: body.settings,
        client_policy: Some(user.account.policy.clone()),
        ..Default::default()
    };
    let up = app.svc.register_subscription(user.account.id, &user.external_id, reg).await?;
    let status = if up.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ChannelSubscription::from(&up.value))))
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /user/v1/channels/{channel_id}/subscriptions`: the user's active subscriptions on the
/// channel, cursor-paginated like every Herald list.
#[tracing::instrument(skip_all)]
async fn list(
    User(user): User,
    State(app): State<AppState>,
    ApiPath(channel): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<ChannelSubscription>>> {
    let channel = app.svc.channel(user.account.id, &channel_id(&channel)?).await?;
    let filter = SubscriptionFilter {
        account_id: user.account.id,
        external_id: Some(user.external_id),
        channel_id: Some(channel.id),
        status: Some(SubscriptionStatus::Active),
        after_id: parse_cursor(q.cursor.as_deref())?,
        limit: page_limit(q.limit),
        ..Default::default()
    };
    let page = app.svc.list_subscriptions(filter).await?;
    Ok(Json(ListResponse {
        data: page.items.iter().map(ChannelSubscription::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `DELETE /user/v1/channels/{channel_id}/subscriptions/{id}`: 204; another user's subscription,
/// or one on another channel, is 404.
#[tracing::instrument(skip_all)]
async fn remove(
    User(user): User,
    State(app): State<AppState>,
    ApiPath((channel, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let channel = app.svc.channel(user.account.id, &channel_id(&channel)?).await?;
    let not_found = || ApiError(ServiceError::not_found("subscription", &id));
    let sub_id = id.parse::<i64>().map_err(|_| not_found())?;
    let sub = app.svc.get_subscription(user.account.id, sub_id, Some(&user.external_id)).await?;
    if sub.channel_id != channel.id {
        return Err(not_found());
    }
    app.svc.delete_subscription(user.account.id, sub_id, Some(&user.external_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
