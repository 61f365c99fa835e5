-- Device vitals (issue 16): the latest snapshot a heartbeat carried, on the kiosk's own row
-- so the heartbeat batch UPDATE writes it in the same statement (no extra round trip), and
-- the boot time, kept apart (a snapshot without uptime leaves it as it was).
-- Nullable columns only: replicas of the previous release keep running on this schema.
ALTER TABLE "kiosks" ADD COLUMN "vitals_reported_at" TIMESTAMP;
ALTER TABLE "kiosks" ADD COLUMN "battery_percent" DOUBLE PRECISION;
ALTER TABLE "kiosks" ADD COLUMN "battery_charging" BOOLEAN;
ALTER TABLE "kiosks" ADD COLUMN "storage_free_bytes" BIGINT;
ALTER TABLE "kiosks" ADD COLUMN "storage_total_bytes" BIGINT;
ALTER TABLE "kiosks" ADD COLUMN "memory_free_bytes" BIGINT;
ALTER TABLE "kiosks" ADD COLUMN "memory_total_bytes" BIGINT;
ALTER TABLE "kiosks" ADD COLUMN "uptime_seconds" DOUBLE PRECISION;
ALTER TABLE "kiosks" ADD COLUMN "network" VARCHAR(16);
ALTER TABLE "kiosks" ADD COLUMN "wifi_signal_dbm" INTEGER;
ALTER TABLE "kiosks" ADD COLUMN "app_in_foreground" BOOLEAN;
ALTER TABLE "kiosks" ADD COLUMN "screen_on" BOOLEAN;
ALTER TABLE "kiosks" ADD COLUMN "boot_time" DOUBLE PRECISION;
