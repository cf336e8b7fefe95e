//! What a browser needs beyond its subscriptions: the channel's VAPID key to subscribe with
//! (`GET /v1/me/vapid`), receipts (`POST /v1/receipts`, credential: the push's receipt token)
//! and renewals (`POST /v1/renewals`, credential: the subscription's renewal token), which the
//! service worker sends without any user token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::ServiceError;
use herald_core::model::ChannelType;
use herald_core::receipts::ReceiptEvent;
use herald_core::service::SubscriptionView;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse_enum;
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiQuery, Client, JsonBody};
use crate::http::limits::{Decision, Policy};

/// Receipts one client address may report per minute.
const RECEIPTS_PER_MINUTE: u32 = 600;
/// Renewals one client address may ask for per minute.
const RENEWALS_PER_MINUTE: u32 = 60;

/// A subscription as its own browser sees it right after registering: with the renewal token
/// its service worker keeps to replace it on `pushsubscriptionchange` (shown only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientSubscription {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// Scoped to replacing this one subscription (`POST /v1/renewals`).
    pub renewal_token: String,
}

impl ClientSubscription {
    /// The view with a fresh renewal token.
    pub async fn new(app: &AppState, subscription: SubscriptionView) -> Result<Self, ServiceError> {
        let renewal_token = app.svc.renewal_token(subscription.id).await?;
        Ok(ClientSubscription { subscription, renewal_token })
    }
}

/// `GET /v1/me/vapid` query.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct VapidQuery {
    /// A Web Push channel of the account; default: its default Web Push channel.
    pub channel_id: Option<String>,
}

/// The key a browser subscribes with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VapidKey {
    pub channel_id: String,
    /// base64url, uncompressed P-256 point: `applicationServerKey` of `pushManager.subscribe`.
    pub vapid_public_key: String,
}

/// The Web Push channel's VAPID public key, for `pushManager.subscribe`.
#[utoipa::path(get, path = "/v1/me/vapid", tag = "me", params(VapidQuery),
    responses((status = 200, body = VapidKey), (status = 404, body = crate::http::openapi::ErrorBody)),
    security(("public_key" = [], "user_token" = []), ("session" = [])))]
pub async fn vapid(
    Client(c): Client,
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<VapidQuery>,
) -> ApiResult<Json<VapidKey>> {
    let channel = match q.channel_id {
        Some(id) => app.svc.channel(c.account.id, &id).await?,
        None => app.svc.default_channel(c.account.id, ChannelType::WebPush, "channel_id").await?,
    };
    let key = channel.config.get("vapid_public_key").and_then(Value::as_str).map(str::to_string);
    let key = key
        .filter(|_| channel.channel_type == ChannelType::WebPush)
        .ok_or_else(|| ServiceError::invalid("channel_id", "invalid", "not a Web Push channel"))?;
    Ok(Json(VapidKey { channel_id: channel.id, vapid_public_key: key }))
}

/// `POST /v1/receipts`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReportReceipt {
    /// The receipt token the push carried (`herald.receipt`, `herald_receipt`).
    pub token: String,
    /// `displayed`, `clicked` or `dismissed`.
    pub event: String,
    /// The action id clicked, when not the notification itself.
    pub action: Option<String>,
}

fn per_address(app: &AppState, what: &str, addr: SocketAddr, per_minute: u32) -> Result<(), ServiceError> {
    match app.limits.check(&format!("{what}:{}", addr.ip()), Policy::per_minute(per_minute)) {
        Decision::Allowed { .. } => Ok(()),
        Decision::Limited { policy, retry_after_secs } => Err(ServiceError::RateLimited {
            limit: policy.limit,
            window_secs: policy.window_secs,
            retry_after: retry_after_secs,
        }),
    }
}

/// Records that a push was displayed, clicked or dismissed. Idempotent: the first report of
/// each event wins. The token is the only credential.
#[utoipa::path(post, path = "/v1/receipts", tag = "me", request_body = ReportReceipt,
    responses((status = 204), (status = 401, body = crate::http::openapi::ErrorBody), (status = 422, body = crate::http::openapi::ErrorBody)),
    security(()))]
pub async fn receipt(
    State(app): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<ReportReceipt>,
) -> ApiResult<StatusCode> {
    per_address(&app, "receipts", addr, RECEIPTS_PER_MINUTE)?;
    let event = parse_enum("event", &req.event, ReceiptEvent::parse, || "displayed, clicked, dismissed".into())?;
    app.svc.record_receipt(&req.token, event, req.action.as_deref()).await?;
    herald_core::metrics::global().inc("herald_receipts_total", &[("event", event.as_str())]);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/renewals`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Renewal {
    /// The renewal token Herald gave with the subscription being replaced.
    pub token: String,
    /// The browser's new push subscription (`{endpoint, keys: {p256dh, auth}}`).
    #[schema(value_type = Object)]
    pub settings: Value,
}

/// Replaces a subscription whose browser re-subscribed (`pushsubscriptionchange`): same user,
/// channel and topics; the old one becomes inactive with `inactive_reason: "replaced"`.
#[utoipa::path(post, path = "/v1/renewals", tag = "me", request_body = Renewal,
    responses((status = 201, body = ClientSubscription), (status = 200, body = ClientSubscription),
        (status = 401, body = crate::http::openapi::ErrorBody), (status = 410, body = crate::http::openapi::ErrorBody)),
    security(()))]
pub async fn renew(
    State(app): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<Renewal>,
) -> ApiResult<(StatusCode, Json<ClientSubscription>)> {
    per_address(&app, "renewals", addr, RENEWALS_PER_MINUTE)?;
    let up = app.svc.renew_subscription(&req.token, req.settings).await?;
    let status = if up.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ClientSubscription::new(&app, SubscriptionView::from(&up.value)).await?)))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me/vapid", get(vapid))
        .route("/v1/receipts", post(receipt))
        .route("/v1/renewals", post(renew))
}
