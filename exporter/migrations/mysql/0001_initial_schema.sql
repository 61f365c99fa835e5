-- Kiosks and back-office tokens, as exporter/models.py maps them.
-- IF NOT EXISTS adopts a database created before migrations existed (by Pony's
-- create_tables) instead of failing on it.
-- utf8mb4 whatever the server's default: kiosk names are not all ASCII. The binary
-- collation makes names and locations compare exactly as on SQLite and PostgreSQL
-- ("Kiosk-A" and "kiosk-a" are two kiosks), where MySQL's default *_ci collations
-- would call them duplicates. DATETIME(6) keeps microseconds.

CREATE TABLE IF NOT EXISTS `kiosks` (
  `id` INTEGER PRIMARY KEY AUTO_INCREMENT,
  `kiosk_name` VARCHAR(128) UNIQUE NOT NULL,
  `location` VARCHAR(256) NOT NULL,
  `is_active` BOOLEAN NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  `last_heartbeat_at` DATETIME(6),
  `app_version` VARCHAR(64),
  `device_info` VARCHAR(256),
  `api_key_hash` VARCHAR(64) UNIQUE NOT NULL,
  `key_prefix` VARCHAR(16) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `backoffice_tokens` (
  `id` INTEGER PRIMARY KEY AUTO_INCREMENT,
  `name` VARCHAR(128) NOT NULL,
  `token_hash` VARCHAR(64) UNIQUE NOT NULL,
  `key_prefix` VARCHAR(16) NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  `last_used_at` DATETIME(6),
  `revoked` BOOLEAN NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
