-- Expected hours (issue 13): schedules with versioned weekly hours, each kiosk's current
-- schedule (NULL = `always`, so every existing kiosk is on `always`), maintenance windows,
-- the kiosk event log, and the service's own liveness intervals per replica.

ALTER TABLE "kiosks" ADD COLUMN "schedule_id" INTEGER;

CREATE TABLE "schedules" (
  "id" SERIAL PRIMARY KEY,
  "name" VARCHAR(64) UNIQUE NOT NULL,
  "created_at" TIMESTAMP NOT NULL
);

-- hours NULL: the schedule was removed from valid_from on (its past stays judgeable).
CREATE TABLE "schedule_versions" (
  "id" SERIAL PRIMARY KEY,
  "schedule_id" INTEGER NOT NULL,
  "valid_from" TIMESTAMP NOT NULL,
  "timezone" VARCHAR(64) NOT NULL,
  "hours" VARCHAR(1024)
);
CREATE INDEX "idx_schedule_versions_schedule" ON "schedule_versions" ("schedule_id", "valid_from");

CREATE TABLE "maintenance_windows" (
  "id" SERIAL PRIMARY KEY,
  "kiosk_id" INTEGER NOT NULL,
  "starts_at" TIMESTAMP NOT NULL,
  "ends_at" TIMESTAMP NOT NULL,
  "reason" VARCHAR(256)
);
CREATE INDEX "idx_maintenance_windows_kiosk" ON "maintenance_windows" ("kiosk_id", "ends_at");
CREATE INDEX "idx_maintenance_windows_ends" ON "maintenance_windows" ("ends_at");

CREATE TABLE "kiosk_event" (
  "id" SERIAL PRIMARY KEY,
  "kiosk_id" INTEGER NOT NULL,
  "at" TIMESTAMP NOT NULL,
  "kind" VARCHAR(32) NOT NULL,
  "actor" VARCHAR(128),
  "detail" VARCHAR(1024)
);
CREATE INDEX "idx_kiosk_event_kiosk" ON "kiosk_event" ("kiosk_id", "at");
CREATE INDEX "idx_kiosk_event_kind" ON "kiosk_event" ("kind", "kiosk_id", "at");

CREATE TABLE "service_liveness" (
  "id" SERIAL PRIMARY KEY,
  "replica" VARCHAR(128) NOT NULL,
  "started_at" TIMESTAMP NOT NULL,
  "last_seen_at" TIMESTAMP NOT NULL
);
CREATE INDEX "idx_service_liveness_seen" ON "service_liveness" ("last_seen_at");
