-- Back-office token scopes and location limits, enrollment codes, idempotent management.
-- Existing tokens become `read` (the default): nobody gains a right by upgrading.

ALTER TABLE "backoffice_tokens" ADD COLUMN "scope" VARCHAR(16) NOT NULL DEFAULT 'read';

CREATE TABLE IF NOT EXISTS "backoffice_token_locations" (
  "id" SERIAL PRIMARY KEY,
  "token_id" INTEGER NOT NULL,
  "location" VARCHAR(256) NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_backoffice_token_locations__token_id"
  ON "backoffice_token_locations" ("token_id");
ALTER TABLE "backoffice_token_locations" ADD CONSTRAINT "fk_backoffice_token_locations__token_id"
  FOREIGN KEY ("token_id") REFERENCES "backoffice_tokens" ("id") ON DELETE CASCADE;

ALTER TABLE "kiosks" ADD COLUMN "enrollment_code_hash" VARCHAR(64);
ALTER TABLE "kiosks" ADD COLUMN "enrollment_expires_at" TIMESTAMP;
ALTER TABLE "kiosks" ADD CONSTRAINT "kiosks_enrollment_code_hash_key"
  UNIQUE ("enrollment_code_hash");

CREATE TABLE IF NOT EXISTS "admin_idempotency_keys" (
  "id" SERIAL PRIMARY KEY,
  "token_id" INTEGER NOT NULL,
  "idempotency_key" VARCHAR(128) NOT NULL,
  "request_hash" VARCHAR(64) NOT NULL,
  "kiosk_id" INTEGER NOT NULL,
  "created_at" TIMESTAMP NOT NULL,
  CONSTRAINT "unq_admin_idempotency_keys__token_id_idempotency_key"
    UNIQUE ("token_id", "idempotency_key")
);
