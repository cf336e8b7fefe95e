//! The OpenAPI document, generated from the handlers' annotations and the types they use.
//! `openapi.json` at the repository root is this document, committed; CI checks they match.

use herald_core::model::*;
use herald_core::service::{AccountCreated, ChannelView, KeyCreated, SendAccepted, SessionCreated, SubscriptionView};
use utoipa::openapi::security::{ApiKey as ApiKeyScheme, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::v1::{admin, channels, credentials, notifications, subscriptions, users, webhooks};

/// The error body of every `/v1` and `/admin/v1` failure (DESIGN.md section 4).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// The `error` object.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// `bad_request`, `unauthenticated`, `forbidden`, `not_found`, `conflict`,
    /// `validation_failed`, `rate_limited`, `internal_error`.
    pub code: String,
    pub message: String,
    pub status: u16,
    pub request_id: String,
    #[serde(rename = "type")]
    pub type_url: String,
    /// `fields[]` for validation errors; `reason`/`param` for bad requests; `resource`/`id` for not found.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        c.add_security_scheme("admin_token", bearer());
        c.add_security_scheme("secret_key", bearer());
        c.add_security_scheme("public_key", bearer());
        c.add_security_scheme("session", bearer());
        c.add_security_scheme(
            "user_token",
            SecurityScheme::ApiKey(ApiKeyScheme::Header(ApiKeyValue::new("x-herald-user-token"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Self-hosted push notifications: one registry for Web Push, APNs and FCM."),
    modifiers(&Security),
    paths(
        admin::create, admin::list, admin::get_one, admin::update,
        credentials::create_key, credentials::list_keys, credentials::revoke_key,
        credentials::create_signing_key, credentials::list_signing_keys, credentials::delete_signing_key,
        credentials::create_session, credentials::delete_session,
        channels::create, channels::list, channels::get_one, channels::update, channels::remove,
        users::put, users::get_one, users::remove,
        subscriptions::register_for_user, subscriptions::list_for_user, subscriptions::get_one,
        subscriptions::patch_one, subscriptions::delete_one, subscriptions::add_topic, subscriptions::remove_topic,
        subscriptions::list_topic, subscriptions::register_me, subscriptions::list_me, subscriptions::get_me,
        subscriptions::patch_me, subscriptions::delete_me, subscriptions::add_topic_me, subscriptions::remove_topic_me,
        notifications::send, notifications::get_one, notifications::list, notifications::subscription_deliveries,
        notifications::my_inbox, notifications::my_read, notifications::user_inbox, notifications::user_read,
        webhooks::create, webhooks::list, webhooks::get_one, webhooks::update, webhooks::remove,
        crate::http::v1::pairing::create, crate::http::v1::pairing::redeem,
        crate::http::v1::browser::vapid, crate::http::v1::browser::receipt, crate::http::v1::browser::renew,
        admin::update_own,
    ),
    components(schemas(ErrorBody, ErrorObject, Account, ApiKey, SigningKey, User, AccountCreated, KeyCreated,
        SessionCreated, ChannelView, SubscriptionView, SendAccepted, Delivery))
)]
struct ApiDoc;

/// The document as pretty JSON with a trailing newline (the committed form).
pub fn document() -> String {
    let mut json = ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
