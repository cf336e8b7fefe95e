-- What only the compatible surfaces need persisted (SQLite).

-- Bright Pattern chats: a chat's subscribers carry the topic `chat:<id>`.
CREATE TABLE chats (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX chats_user ON chats(user_id);

-- Users a Discord-style device sync linked to one device (channel, identifier): a plain
-- registration by one of them does not move the device away from the others.
CREATE TABLE device_links (
    channel_id TEXT NOT NULL REFERENCES channels(id),
    identifier TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, identifier, user_id)
);
CREATE INDEX device_links_user ON device_links(user_id);

-- Per-deployment secrets generated on first use (the key that signs device sync tokens).
CREATE TABLE deployment_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
