//! Pairing codes: the backend mints one for (channel, user) and shows its QR code or sends its
//! deep link; the browser (the hosted page) or app redeems it once, with no other credential.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use herald_core::clock::rfc3339;
use herald_core::model::{Environment, SubscriptionKind};
use herald_core::service::{Registration, SubscriptionView};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse_enum;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, Backend, JsonBody};
use crate::http::{AppState, pages};

/// `POST /v1/pairing-codes`
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreatePairingCode {
    pub channel_id: String,
    /// The user the redeemed subscription will belong to (created on redemption when new).
    pub user: String,
    /// Lifetime, 60-604800 seconds; default 3600.
    pub ttl_seconds: Option<i64>,
}

/// A new pairing code. The code is shown once; Herald keeps only its hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PairingCodeView {
    /// Random, URL-safe, single use.
    pub code: String,
    /// `data:image/gif;base64,…`: a QR code of `deep_link`.
    pub qrcode: String,
    /// `<public url>/qrcode/<code>`: the hosted page that subscribes a browser and redeems the code.
    pub deep_link: String,
    pub channel_id: String,
    pub user: String,
    pub expires_at: String,
}

/// `POST /v1/pair/{code}`: the subscription's settings, as for a registration.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RedeemPairingCode {
    /// Web Push `PushSubscription.toJSON()` (`{endpoint, keys: {p256dh, auth}}`); APNs/FCM `{token}`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// `standard` or `voip` (APNs PushKit).
    pub kind: Option<String>,
    /// `production` or `sandbox` (APNs).
    pub environment: Option<String>,
    pub topics: Option<Vec<String>>,
}

/// Mints a single-use pairing code for a user on a channel, with its QR code and deep link.
#[utoipa::path(post, path = "/v1/pairing-codes", tag = "pairing", request_body = CreatePairingCode,
    responses((status = 201, body = PairingCodeView), (status = 404, body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create(
    Backend(account): Backend,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CreatePairingCode>,
) -> ApiResult<(StatusCode, Json<PairingCodeView>)> {
    let created = app.svc.create_pairing_code(account.id, &req.channel_id, &req.user, req.ttl_seconds).await?;
    let view = PairingCodeView {
        qrcode: pages::pairing_qr(&app.public_url, &created.code)?,
        deep_link: pages::deep_link(&app.public_url, &created.code),
        code: created.code,
        channel_id: created.channel_id,
        user: created.user,
        expires_at: rfc3339(created.expires_at),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Redeems a pairing code once: subscribes the presented browser or device for the code's user
/// on the code's channel. 201 when created, 200 when it existed; 404 unknown, 410 used or expired.
#[utoipa::path(post, path = "/v1/pair/{code}", tag = "pairing", request_body = RedeemPairingCode,
    params(("code" = String, Path, description = "the pairing code")),
    responses((status = 201, body = super::browser::ClientSubscription), (status = 200, body = super::browser::ClientSubscription),
        (status = 404, body = crate::http::openapi::ErrorBody), (status = 410, body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ErrorBody)),
    security(()))]
pub async fn redeem(
    State(app): State<AppState>,
    ApiPath(code): ApiPath<String>,
    JsonBody(req): JsonBody<RedeemPairingCode>,
) -> ApiResult<(StatusCode, Json<super::browser::ClientSubscription>)> {
    let reg = Registration {
        channel_id: None,
        identifier: None,
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
        client_policy: None, // the code's account decides it
    };
    let up = app.svc.redeem_pairing_code(&code, reg).await?;
    let status = if up.created { StatusCode::CREATED } else { StatusCode::OK };
    let view = super::browser::ClientSubscription::new(&app, SubscriptionView::from(&up.value)).await?;
    Ok((status, Json(view)))
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/pairing-codes", post(create)).route("/v1/pair/{code}", post(redeem))
}
