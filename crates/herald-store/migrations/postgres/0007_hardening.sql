-- One device is one subscription: the canonical device address (Web Push endpoint or device
-- token) beside the caller's identifier. Filled for existing rows by the store on open
-- (crates/herald-store/src/canonical.rs), which also merges rows that turn out to be the same
-- device. Unique per user; device ownership ("moved") keys on it.
ALTER TABLE subscriptions ADD COLUMN address TEXT;
CREATE UNIQUE INDEX subscriptions_device ON subscriptions(channel_id, address, user_id);
CREATE INDEX subscriptions_address ON subscriptions(channel_id, address, status);

-- What an account lets its clients do (model.rs `AccountPolicy`), as one JSON document.
ALTER TABLE accounts ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';

-- A signing key may pin the `aud` and `iss` its tokens must carry.
ALTER TABLE signing_keys ADD COLUMN audience TEXT;
ALTER TABLE signing_keys ADD COLUMN issuer TEXT;
