-- Delivery receipts (crates/herald-core/src/receipts.rs): when the device showed, clicked or
-- dismissed a push, as its service worker or app reported it with the push's receipt token.
ALTER TABLE deliveries ADD COLUMN displayed_at BIGINT;
ALTER TABLE deliveries ADD COLUMN clicked_at BIGINT;
ALTER TABLE deliveries ADD COLUMN clicked_action TEXT;
ALTER TABLE deliveries ADD COLUMN dismissed_at BIGINT;
