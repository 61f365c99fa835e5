-- Kiosks created by `kiosk-exporter simulate` are marked, so `kiosk remove --simulated`
-- removes them all and nothing else (a name prefix could be shared by a real kiosk).
-- The default keeps the previous release's inserts working during a rolling deploy.

ALTER TABLE "kiosks" ADD COLUMN "is_simulated" BOOLEAN NOT NULL DEFAULT FALSE;
