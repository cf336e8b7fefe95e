//! SQL fragments shared by the store's statements (column lists, the subscription select).

macro_rules! account_cols {
    () => {
        "id, name, status, dev_mode, rate_limit_per_minute, policy, created_at"
    };
}
macro_rules! key_cols {
    () => {
        "k.id, k.account_id, k.kind, k.prefix, k.key_hash, k.channel_id, k.created_at, k.revoked_at"
    };
}
macro_rules! user_cols {
    () => {
        "id, account_id, external_id, properties, created_at, updated_at"
    };
}
macro_rules! channel_cols {
    () => {
        "id, account_id, name, type, config, is_default, health, last_error, last_error_at, created_at, updated_at"
    };
}
macro_rules! subscription_cols {
    () => {
        "SELECT s.id, s.account_id, s.user_id, u.external_id, s.channel_id, c.type AS channel_type, \
         s.identifier, s.settings, s.kind, s.environment, s.status, s.inactive_reason, s.muted, \
         s.created_at, s.updated_at, s.last_seen_at "
    };
}
macro_rules! subscription_select {
    () => {
        concat!(
            subscription_cols!(),
            "FROM subscriptions s JOIN users u ON u.id = s.user_id JOIN channels c ON c.id = s.channel_id "
        )
    };
}
/// Starts from the users' unique index when the caller names users. `CROSS JOIN` fixes the join
/// order on SQLite (whose planner would otherwise walk every subscription of the account); on
/// PostgreSQL it is an ordinary inner join.
macro_rules! subscription_select_by_user {
    () => {
        concat!(
            subscription_cols!(),
            "FROM users u CROSS JOIN subscriptions s JOIN channels c ON c.id = s.channel_id WHERE s.user_id = u.id "
        )
    };
}
