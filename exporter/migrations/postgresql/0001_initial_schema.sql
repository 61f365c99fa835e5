-- Kiosks and back-office tokens, as exporter/models.py maps them.
-- IF NOT EXISTS adopts a database created before migrations existed (by Pony's
-- create_tables, with exactly these definitions) instead of failing on it.
-- TIMESTAMP keeps microseconds (precision 6) and holds naive UTC, as the store writes it.

CREATE TABLE IF NOT EXISTS "kiosks" (
  "id" SERIAL PRIMARY KEY,
  "kiosk_name" VARCHAR(128) UNIQUE NOT NULL,
  "location" VARCHAR(256) NOT NULL,
  "is_active" BOOLEAN NOT NULL,
  "created_at" TIMESTAMP NOT NULL,
  "last_heartbeat_at" TIMESTAMP,
  "app_version" VARCHAR(64),
  "device_info" VARCHAR(256),
  "api_key_hash" VARCHAR(64) UNIQUE NOT NULL,
  "key_prefix" VARCHAR(16) NOT NULL
);

CREATE TABLE IF NOT EXISTS "backoffice_tokens" (
  "id" SERIAL PRIMARY KEY,
  "name" VARCHAR(128) NOT NULL,
  "token_hash" VARCHAR(64) UNIQUE NOT NULL,
  "key_prefix" VARCHAR(16) NOT NULL,
  "created_at" TIMESTAMP NOT NULL,
  "last_used_at" TIMESTAMP,
  "revoked" BOOLEAN NOT NULL
);
