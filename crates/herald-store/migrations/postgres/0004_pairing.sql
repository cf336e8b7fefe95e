-- Pairing codes (PostgreSQL): a short-lived secret that subscribes one device to one
-- (channel, user) when redeemed. Stored as SHA-256 only, like every secret Herald mints.
CREATE TABLE pairing_codes (
    code_hash BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    -- the user the redeemed subscription belongs to (created on redemption if new)
    external_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- set by the one winning redemption; NULL while the code is usable
    redeemed_at BIGINT,
    -- the subscription the redemption created or refreshed
    subscription_id BIGINT
);
CREATE INDEX pairing_codes_expires ON pairing_codes(expires_at);
