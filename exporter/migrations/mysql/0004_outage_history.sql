-- Outage history (issue 14): outages, each kiosk's observation start and counter totals,
-- and when history began. Outage rows are facts (the last heartbeat before a gap, when
-- status turned offline with the threshold then in force, the heartbeat that ended it);
-- exporter/outages.py judges them. A kiosk already connected at upgrade time is observed
-- from the upgrade on; `kiosk-exporter db upgrade` then opens an outage for each kiosk
-- offline at that moment (the threshold is a setting, unknown to SQL).

CREATE TABLE `outages` (
  `id` INTEGER PRIMARY KEY AUTO_INCREMENT,
  `kiosk_id` INTEGER NOT NULL,
  `started_at` DATETIME(6) NOT NULL,
  `offline_at` DATETIME(6) NOT NULL,
  `ended_at` DATETIME(6),
  CONSTRAINT `unq_outages__kiosk_id_started_at` UNIQUE (`kiosk_id`, `started_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX `idx_outages__ended_at` ON `outages` (`ended_at`);

CREATE INDEX `idx_outages__kiosk_id_offline_at` ON `outages` (`kiosk_id`, `offline_at`);

CREATE TABLE `kiosk_history` (
  `kiosk_id` INTEGER PRIMARY KEY,
  `observed_since` DATETIME(6) NOT NULL,
  `through_at` DATETIME(6),
  `downtime_us` BIGINT NOT NULL,
  `observed_us` BIGINT NOT NULL,
  `outages` BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE `history_state` (
  `id` INTEGER PRIMARY KEY,
  `started_at` DATETIME(6) NOT NULL,
  `purged_before` DATETIME(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO `history_state` (`id`, `started_at`) VALUES (1, UTC_TIMESTAMP(6));

-- Kiosks connected before history began are observed from then on.
INSERT INTO `kiosk_history` (`kiosk_id`, `observed_since`, `downtime_us`, `observed_us`, `outages`)
  SELECT `id`, (SELECT `started_at` FROM `history_state`), 0, 0, 0 FROM `kiosks` WHERE `last_heartbeat_at` IS NOT NULL;
