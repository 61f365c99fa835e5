"""Metric names and the service's own instruments; names here are a public interface."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from . import __version__

LAST_HEARTBEAT = "kiosk_last_heartbeat_timestamp_seconds"
HEARTBEAT_AGE = "kiosk_heartbeat_age_seconds"
ONLINE = "kiosk_online"
ACTIVE = "kiosk_active"
INFO = "kiosk_info"
OUTDATED = "kiosk_app_version_outdated"
FLEET = "kiosk_fleet_kiosks"
# Device vitals (issue 16), per kiosk, in base units; only values known and fresh.
BATTERY_RATIO = "kiosk_battery_ratio"
BATTERY_CHARGING = "kiosk_battery_charging"
STORAGE_FREE = "kiosk_storage_free_bytes"
STORAGE_SIZE = "kiosk_storage_size_bytes"
MEMORY_FREE = "kiosk_memory_free_bytes"
MEMORY_SIZE = "kiosk_memory_size_bytes"
BOOT_TIME = "kiosk_boot_time_seconds"
WIFI_SIGNAL = "kiosk_wifi_signal_dbm"
APP_IN_FOREGROUND = "kiosk_app_in_foreground"
SCREEN_ON = "kiosk_screen_on"
NETWORK_INFO = "kiosk_network_info"
OFFLINE_WHILE_EXPECTED = "kiosk_offline_while_expected_seconds"
EXPECTED_ONLINE = "kiosk_expected_online"
MAINTENANCE = "kiosk_maintenance"
OFFLINE_SECONDS = "kiosk_offline_seconds_total"
OBSERVED_SECONDS = "kiosk_observed_seconds_total"
OUTAGES = "kiosk_outages_total"
# metrics_per_kiosk: attention (issue 17): per-location roll-ups over every kiosk, and the
# recent outages of each kiosk shown (the stand-in for increases of kiosk_outages_total).
LOCATION_KIOSKS = "kiosk_location_kiosks"
LOCATION_ELIGIBLE = "kiosk_location_eligible_kiosks"
LOCATION_ELIGIBLE_ONLINE = "kiosk_location_eligible_online_kiosks"
LOCATION_VERSIONS = "kiosk_location_app_version_kiosks"
LOCATION_OFFLINE_SECONDS = "kiosk_location_offline_seconds_total"
LOCATION_OBSERVED_SECONDS = "kiosk_location_observed_seconds_total"
LOCATION_OUTAGES = "kiosk_location_outages_total"
RECENT_OUTAGES = "kiosk_outages_last_hour"
IDENTITY_LABELS = ("kiosk_id", "kiosk_name", "location")
REJECTION_REASONS = ("auth", "inactive", "invalid", "rate_limited", "unavailable")
ENROLLMENT_OUTCOMES = ("enrolled", "refused", "rate_limited")
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

# Tablets send `sent_at` from their own clocks: the delay spans network time plus skew.
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# A sent_at further than this from the server clock is a wrong tablet clock, not a delay.
CLOCK_SKEW_LIMIT_SECONDS = 86_400
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    """Counters and histograms updated by requests, registered on an app-owned registry."""

    def __init__(self, registry: CollectorRegistry, diagnostic_fields: Iterable[str] = ()) -> None:
        self.heartbeats = Counter(
            "kiosk_exporter_heartbeats",
            "Heartbeats accepted and committed.",
            registry=registry,
        )
        self.rejected = Counter(
            "kiosk_exporter_heartbeats_rejected",
            "Heartbeats refused, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason)
        self.enrollments = Counter(
            "kiosk_exporter_enrollment_attempts",
            "POST /kiosk/enroll attempts by outcome (refused: a used, expired or unknown code; "
            "rate_limited: refused before looking, too many refusals from that address).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ENROLLMENT_OUTCOMES:
            self.enrollments.labels(outcome)
        self.delay = Histogram(
            "kiosk_exporter_heartbeat_delay_seconds",
            "Server receive time minus the tablet's sent_at (negative skew counts as 0).",
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.clock_skew = Counter(
            "kiosk_exporter_heartbeat_clock_skew",
            "Accepted heartbeats whose sent_at is more than a day from the server clock; "
            "left out of the delay histogram.",
            registry=registry,
        )
        # No label: the names are chosen by clients, so a label would be unbounded.
        self.ignored_fields = Counter(
            "kiosk_exporter_heartbeat_ignored_fields",
            "Unknown top-level fields ignored in accepted heartbeats.",
            registry=registry,
        )
        self.rejected_fields = Counter(
            "kiosk_exporter_heartbeat_rejected_fields",
            "Invalid diagnostic fields dropped from accepted heartbeats, by field.",
            ["field"],
            registry=registry,
        )
        for name in diagnostic_fields:
            self.rejected_fields.labels(name)
        self.request_duration = Histogram(
            "kiosk_exporter_request_duration_seconds",
            "HTTP request duration by route template.",
            ["route", "method", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._durations: dict[tuple[str, str, str], Histogram] = {}
        build_info = Gauge(
            "kiosk_exporter_build_info",
            "Version of the running exporter; always 1.",
            ["version"],
            registry=registry,
            multiprocess_mode="max",  # under --workers: one series, not one per worker
        )
        build_info.labels(__version__).set(1)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def heartbeat_accepted(
        self,
        received_at: datetime,
        sent_at: datetime | None,
        ignored: int = 0,
        rejected: Mapping[str, str] | None = None,
    ) -> None:
        self.heartbeats.inc()
        if sent_at is not None:
            delay = (received_at - sent_at).total_seconds()
            if abs(delay) > CLOCK_SKEW_LIMIT_SECONDS:
                self.clock_skew.inc()
            else:
                self.delay.observe(max(0.0, delay))
        if ignored:
            self.ignored_fields.inc(ignored)
        for name in rejected or ():
            self.rejected_fields.labels(name).inc()

    def enrollment_attempt(self, outcome: str) -> None:
        self.enrollments.labels(outcome).inc()

    def heartbeat_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def request_finished(self, route: str, method: str, status: str, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "other"
        key = (route, method, status)
        child = self._durations.get(key)
        if child is None:
            # labels() takes a lock and builds a key on every call; routes x methods x
            # statuses is a small set, so keep the children at hand.
            child = self._durations[key] = self.request_duration.labels(*key)
        child.observe(seconds)


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """Under `serve --workers`: the service metrics summed over every worker's files
    (prometheus_client's multiprocess mode; the process_* and python_* collectors, which
    describe one process, are not on this page)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry
