-- Serving processes and their heartbeats (crates/herald-core/src/cluster.rs): a node silent for
-- node_timeout is removed by any live node, which releases its leases at once.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
