//! The bnotify surface (seeds/004, DESIGN.md section 6), under `/compat/bnotify`: a channel key
//! (`X-CHANNEL-API-KEY`, `ck_…`) mints pairing codes for its channel's users, lists the
//! channel's subscriptions and sends to a subscribed user. The pairing page and the phone
//! how-to its links point at are Herald's own (`/qrcode/{code}`, `/mobile`).
//!
//! A translator only: pairing codes, subscription lookups and sends are the service layer's;
//! this module parses bnotify's requests and renders its bodies and NestJS-style errors.
//! Checks run in this order: key (401), rate limit (429), channel id syntax (400), the key's
//! channel (404), body (400), then what the service finds (404).

mod body;
mod error;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::delivery::Content;
use herald_core::model::KeyKind;
use serde_json::{Value, json};

use self::body::{NotificationView, SubscriptionView, parse_send};
use self::error::{BnError, CHANNEL_ID_NOT_VALID, CHANNEL_NOT_FOUND};
use crate::http::limits::{Decision, Policy};
use crate::http::{AppState, pages};

/// The header bnotify's backends send their channel key in.
const KEY_HEADER: &str = "x-channel-api-key";
/// bnotify's documented budget for the code, list and details endpoints, per key.
const READS_PER_MINUTE: u32 = 200;
/// bnotify's documented budget for sends, per key.
const SENDS_PER_MINUTE: u32 = 600;
/// bnotify suggests sending the deep link by email, so its codes live a day, not an hour.
const CODE_TTL_SECONDS: i64 = 24 * 3600;

/// Which of a key's two budgets a request spends.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Read,
    Send,
}

/// The authenticated key's account and channel.
struct ChannelCtx {
    account_id: i64,
    channel_id: String,
}

/// A canonical (hyphenated) UUID, the only form Herald's channel ids take.
fn uuid(s: &str) -> Option<uuid::Uuid> {
    (s.len() == 36).then(|| uuid::Uuid::try_parse(s).ok()).flatten()
}

/// Authenticates the channel key, spends one request of its budget, and checks the path's
/// channel id: not a UUID is 400 `Channel id not valid`; a UUID other than the key's channel
/// is 404 `Channel not found` (whether that channel exists elsewhere is not revealed).
async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    channel_param: &str,
    budget: Budget,
) -> Result<ChannelCtx, BnError> {
    let presented = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(BnError::Unauthorized)?;
    let (account, key) = app.svc.authenticate_key(presented, KeyKind::Channel).await?;
    let key_channel = key.channel_id.ok_or(BnError::Unauthorized)?;
    let (name, per_minute) = match budget {
        Budget::Read => ("read", READS_PER_MINUTE),
        Budget::Send => ("send", SENDS_PER_MINUTE),
    };
    let decision = app.limits.check(&format!("bnotify:{name}:{}", key.id), Policy::per_minute(per_minute));
    if let Decision::Limited { .. } = decision {
        return Err(BnError::TooManyRequests(decision.headers()));
    }
    let asked = uuid(channel_param).ok_or_else(|| BnError::BadRequest(CHANNEL_ID_NOT_VALID.into()))?;
    if uuid(&key_channel) != Some(asked) {
        return Err(BnError::NotFound(CHANNEL_NOT_FOUND));
    }
    Ok(ChannelCtx { account_id: account.id, channel_id: key_channel })
}

fn bad_path(e: PathRejection) -> BnError {
    BnError::BadRequest(Value::String(e.body_text()))
}

/// `GET /channels/{channelId}/subscriptions/{iuid}/code`: a pairing code for the user, its QR
/// code, the deep link (the hosted subscribe page) and the phone how-to.
#[tracing::instrument(skip_all)]
async fn code(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, BnError> {
    let Path((channel, iuid)) = path.map_err(bad_path)?;
    let ctx = authorize(&app, &headers, &channel, Budget::Read).await?;
    let created = app.svc.create_pairing_code(ctx.account_id, &ctx.channel_id, &iuid, Some(CODE_TTL_SECONDS)).await?;
    Ok(Json(json!({
        "code": created.code,
        "qrcode": pages::pairing_qr(&app.public_url, &created.code)?,
        "deepLink": pages::deep_link(&app.public_url, &created.code),
        "appUrl": pages::app_url(&app.public_url),
    })))
}

/// `GET /channels/{channelId}/subscriptions`: the channel's active subscriptions.
#[tracing::instrument(skip_all)]
async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<SubscriptionView>>, BnError> {
    let Path(channel) = path.map_err(bad_path)?;
    let ctx = authorize(&app, &headers, &channel, Budget::Read).await?;
    let subs = app.svc.channel_subscriptions(ctx.account_id, &ctx.channel_id).await?;
    Ok(Json(subs.iter().map(SubscriptionView::from).collect()))
}

/// `GET /channels/{channelId}/subscriptions/{iuid}`: the user's subscription in the channel.
#[tracing::instrument(skip_all)]
async fn detail(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SubscriptionView>, BnError> {
    let Path((channel, iuid)) = path.map_err(bad_path)?;
    let ctx = authorize(&app, &headers, &channel, Budget::Read).await?;
    let sub = app.svc.channel_subscription(ctx.account_id, &ctx.channel_id, &iuid).await?;
    Ok(Json(SubscriptionView::from(&sub)))
}

/// `POST /channels/{channelId}/notifications/{iuid}` with `{"title", "text"}`: sends to the
/// user through this channel only.
#[tracing::instrument(skip_all)]
async fn send(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    raw: Bytes,
) -> Result<Json<NotificationView>, BnError> {
    let Path((channel, iuid)) = path.map_err(bad_path)?;
    let ctx = authorize(&app, &headers, &channel, Budget::Send).await?;
    let body = parse_send(&raw)?;
    let content = Content { title: Some(body.title.clone()), body: Some(body.text.clone()), ..Default::default() };
    let sent = app.svc.send_to_channel_user(ctx.account_id, &ctx.channel_id, &iuid, content).await?;
    Ok(Json(NotificationView::new(&sent, body)))
}

/// NestJS's answer for a route it does not have.
async fn no_route(method: Method, uri: Uri) -> (axum::http::StatusCode, Json<Value>) {
    let message = format!("Cannot {method} {}", uri.path());
    (axum::http::StatusCode::NOT_FOUND, Json(json!({"statusCode": 404, "message": message, "error": "Not Found"})))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/channels/{channel_id}/subscriptions", get(list))
        .route("/channels/{channel_id}/subscriptions/{iuid}", get(detail))
        .route("/channels/{channel_id}/subscriptions/{iuid}/code", get(code))
        .route("/channels/{channel_id}/notifications/{iuid}", post(send))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
}
