-- Indexes for the hot paths, found by EXPLAIN QUERY PLAN under load (PostgreSQL).

-- A worker fetches the rows it just leased by lease token: without this, a full table scan of
-- every delivery ever made, per claim.
CREATE INDEX deliveries_lease_owner ON deliveries(lease_owner) WHERE status = 'sending';
CREATE INDEX webhook_deliveries_lease_owner ON webhook_deliveries(lease_owner) WHERE status = 'sending';
-- The device-ownership rule looks a device up by (channel, identifier) among active rows.
CREATE INDEX subscriptions_identifier ON subscriptions(channel_id, identifier, status);
-- A notification's deliveries, in id order, for GET /v1/notifications/{id}.
CREATE INDEX deliveries_notification ON deliveries(notification_id, id);
