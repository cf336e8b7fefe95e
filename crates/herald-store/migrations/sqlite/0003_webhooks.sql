-- Per-account rate limits, signed webhooks and their durable outbox (SQLite).

-- Requests per minute per credential; NULL means the server's default.
ALTER TABLE accounts ADD COLUMN rate_limit_per_minute BIGINT;

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    url TEXT NOT NULL,
    -- JSON array of event types
    events TEXT NOT NULL,
    -- the Standard Webhooks signing secret (whsec_…); needed in clear to sign, never returned
    secret TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- first failure of the current failing streak; cleared by a success
    failing_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_account ON webhooks(account_id);

-- One row per (event, destination): a signed webhook or a bnotify channel callback.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL,
    -- 'webhook' (signed, to webhook_id) or 'callback' (bnotify, to channel_id's callback_url)
    kind TEXT NOT NULL,
    webhook_id TEXT,
    channel_id TEXT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    lease_owner TEXT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'queued';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries(lease_until) WHERE status = 'sending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, id);
