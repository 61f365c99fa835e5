-- Each settled outage's judged downtime (issue 14: the 30-day fleet document under 2 s).
-- `downtime_us`: the outage's downtime over its whole life, judged by exporter/outages.py
-- once every fact it depends on is settled (it ended before the last recorded liveness);
-- NULL until then, -1 when it was no outage at all (all of it in unknown or not-expected
-- time). A fleet document sums these in SQL for the outages wholly inside its window and
-- judges only the others. `judged_through`: every outage that ended before it is judged
-- (NULL: none yet; the service judges existing history in steps after the upgrade).

ALTER TABLE "outages" ADD COLUMN "downtime_us" BIGINT;

ALTER TABLE "history_state" ADD COLUMN "judged_through" DATETIME;
