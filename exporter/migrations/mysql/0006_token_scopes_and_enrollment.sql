-- Back-office token scopes and location limits, enrollment codes, idempotent management.
-- Existing tokens become `read` (the default): nobody gains a right by upgrading.
-- utf8mb4_bin as in 0001: locations compare exactly as on SQLite and PostgreSQL.

ALTER TABLE `backoffice_tokens` ADD COLUMN `scope` VARCHAR(16) NOT NULL DEFAULT 'read';

CREATE TABLE IF NOT EXISTS `backoffice_token_locations` (
  `id` INTEGER PRIMARY KEY AUTO_INCREMENT,
  `token_id` INTEGER NOT NULL,
  `location` VARCHAR(256) NOT NULL,
  INDEX `idx_backoffice_token_locations__token_id` (`token_id`),
  CONSTRAINT `fk_backoffice_token_locations__token_id` FOREIGN KEY (`token_id`)
    REFERENCES `backoffice_tokens` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE `kiosks`
  ADD COLUMN `enrollment_code_hash` VARCHAR(64) UNIQUE,
  ADD COLUMN `enrollment_expires_at` DATETIME(6);

CREATE TABLE IF NOT EXISTS `admin_idempotency_keys` (
  `id` INTEGER PRIMARY KEY AUTO_INCREMENT,
  `token_id` INTEGER NOT NULL,
  `idempotency_key` VARCHAR(128) NOT NULL,
  `request_hash` VARCHAR(64) NOT NULL,
  `kiosk_id` INTEGER NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  CONSTRAINT `unq_admin_idempotency_keys__token_id_idempotency_key`
    UNIQUE (`token_id`, `idempotency_key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
