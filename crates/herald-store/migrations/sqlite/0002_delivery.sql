-- Herald delivery schema (SQLite): notifications, the delivery outbox, the inbox.

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    -- {"user"} | {"users"} | {"subscription"} | {"topic"} | {"channel_id"}
    target TEXT NOT NULL,
    content TEXT NOT NULL,
    options TEXT NOT NULL,
    -- channel types or ids the sender restricted the send to (JSON array), or NULL
    channel_filter TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    -- the first response, replayed for a repeated Idempotency-Key
    response TEXT,
    -- 'none' (direct send), 'pending' or 'done' (broadcast fan-out)
    fanout_status TEXT NOT NULL,
    -- the last subscription id the fan-out has expanded; advanced in the same transaction
    -- as the delivery rows it covers, so a crash resumes without gaps or duplicates
    fanout_cursor BIGINT NOT NULL,
    fanout_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    send_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX notifications_idempotency ON notifications(account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX notifications_account ON notifications(account_id, created_at);
CREATE INDEX notifications_fanout ON notifications(created_at) WHERE fanout_status = 'pending';

-- One row per (notification, subscription): the work item and its status record.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL REFERENCES notifications(id),
    account_id BIGINT NOT NULL,
    subscription_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    channel_id TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    lease_owner TEXT,
    provider_status INTEGER,
    provider_reason TEXT,
    provider_message_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT,
    UNIQUE (notification_id, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'queued';
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'sending';
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, id);
CREATE INDEX deliveries_user ON deliveries(user_id);

-- A user's notifications, newest first, with their read time.
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    notification_id TEXT NOT NULL REFERENCES notifications(id),
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    UNIQUE (user_id, notification_id)
);
CREATE INDEX inbox_user ON inbox(user_id, id);
