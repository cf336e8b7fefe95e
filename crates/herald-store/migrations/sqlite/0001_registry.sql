-- Herald registry schema (SQLite). Timestamps are integer milliseconds since the epoch.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    dev_mode BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,
    channel_id TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);
CREATE INDEX api_keys_account ON api_keys(account_id);

CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    algorithm TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX signing_keys_account ON signing_keys(account_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    external_id TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, external_id)
);

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    prefix TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_prefix ON sessions(prefix);

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    health TEXT NOT NULL,
    last_error TEXT,
    last_error_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX channels_account ON channels(account_id, type);

CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    identifier TEXT NOT NULL,
    settings TEXT NOT NULL,
    kind TEXT NOT NULL,
    environment TEXT NOT NULL,
    status TEXT NOT NULL,
    inactive_reason TEXT,
    muted BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    UNIQUE (channel_id, identifier, user_id)
);
CREATE INDEX subscriptions_user ON subscriptions(user_id, id);
CREATE INDEX subscriptions_account ON subscriptions(account_id, id);
CREATE INDEX subscriptions_channel ON subscriptions(channel_id, status, id);

CREATE TABLE subscription_topics (
    subscription_id BIGINT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    topic TEXT NOT NULL,
    PRIMARY KEY (subscription_id, topic)
);
CREATE INDEX subscription_topics_topic ON subscription_topics(account_id, topic, subscription_id);
CREATE UNIQUE INDEX channels_one_default ON channels(account_id, type) WHERE is_default AND deleted_at IS NULL;
