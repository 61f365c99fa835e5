-- Back-office token scopes and location limits, enrollment codes, idempotent management.
-- Existing tokens become `read` (the default): nobody gains a right by upgrading.
-- SQLite cannot add a UNIQUE column: the unique index says the same.

ALTER TABLE "backoffice_tokens" ADD COLUMN "scope" VARCHAR(16) NOT NULL DEFAULT 'read';

CREATE TABLE IF NOT EXISTS "backoffice_token_locations" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "token_id" INTEGER NOT NULL REFERENCES "backoffice_tokens" ("id") ON DELETE CASCADE,
  "location" VARCHAR(256) NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_backoffice_token_locations__token_id"
  ON "backoffice_token_locations" ("token_id");

ALTER TABLE "kiosks" ADD COLUMN "enrollment_code_hash" VARCHAR(64);
ALTER TABLE "kiosks" ADD COLUMN "enrollment_expires_at" DATETIME;
CREATE UNIQUE INDEX IF NOT EXISTS "unq_kiosks__enrollment_code_hash"
  ON "kiosks" ("enrollment_code_hash");

CREATE TABLE IF NOT EXISTS "admin_idempotency_keys" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "token_id" INTEGER NOT NULL,
  "idempotency_key" VARCHAR(128) NOT NULL,
  "request_hash" VARCHAR(64) NOT NULL,
  "kiosk_id" INTEGER NOT NULL,
  "created_at" DATETIME NOT NULL,
  CONSTRAINT "unq_admin_idempotency_keys__token_id_idempotency_key"
    UNIQUE ("token_id", "idempotency_key")
);
