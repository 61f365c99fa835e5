"""Fixtures build real objects: a fresh database per test, a movable clock, the real app.

`database_url` runs each test that uses it (directly or through `store`, `client`...) on
SQLite, PostgreSQL and MariaDB. Without a server, its tests skip saying why; with
CI=true they fail, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from prometheus_client import CollectorRegistry

from exporter import schema
from exporter.app import Application, create_app
from exporter.cli import main
from exporter.config import Settings, parse_database_url
from exporter.store import Store, open_store
from tests.support import databases
from tests.support import service as running
from tests.support.service import RunningService

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)


class MovableClock:
    """The only thing tests fake: time. Everything else is the real code on a real database."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failed test's report ends with the log of every server process it started."""
    report = yield
    if report.failed:
        for number, started in enumerate(running.STARTED, 1):
            tail = "\n".join(started.log_lines[-200:])
            report.sections.append((f"service {number} log (last 200 lines)", tail))
    if call.when == "teardown":
        running.STARTED.clear()
    return report


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


BACKENDS = ("sqlite", *databases.SERVER_BACKENDS)


def require_server(backend: str) -> None:
    """Skip when the backend's server is unreachable, or fail the test under CI=true."""
    reason = databases.unavailable_reason(backend)
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the database servers are required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database without a single table: a new SQLite file, or a new server database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'kiosks.db'}"
        return
    require_server(backend)
    with databases.fresh(backend) as url:
        yield url


@pytest.fixture
def database_url(backend: str, empty_database_url: str) -> str:
    """A database the service accepts. The SQLite file stays new, so tests go through the
    zero-setup path users see; a server database is upgraded, as operators do."""
    if backend != "sqlite":
        schema.upgrade(parse_database_url(empty_database_url), timeout_seconds=10)
    return empty_database_url


@pytest.fixture(params=databases.SERVER_BACKENDS)
def server_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, upgraded database on each server (for replicas and outages: not SQLite)."""
    require_server(request.param)
    with databases.fresh(request.param) as url:
        schema.upgrade(parse_database_url(url), timeout_seconds=10)
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    yield store
    store.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database=database_url)


@pytest.fixture
def make_client(
    store: Store, settings: Settings, clock: MovableClock
) -> Iterator[Callable[..., testing.TestClient]]:
    """Build the real app (optionally with other settings) and a falcon TestClient for it."""
    apps: list[Application] = []

    def make(**overrides: Any) -> testing.TestClient:
        application = create_app(
            store=store,
            settings=replace(settings, **overrides),
            registry=CollectorRegistry(),
            clock=clock,
        )
        apps.append(application)
        client = testing.TestClient(application.wsgi)
        client.application = application  # type: ignore[attr-defined]
        return client

    yield make
    for application in apps:
        application.writer.stop()


@pytest.fixture
def client(make_client: Callable[..., testing.TestClient]) -> testing.TestClient:
    return make_client()


@pytest.fixture
def add_kiosk(store: Store, clock: MovableClock) -> Callable[..., tuple[int, str]]:
    def add(name: str = "Kiosk-Entrance", location: str = "Building A") -> tuple[int, str]:
        kiosk, key = store.add_kiosk(name, location, now=clock())
        return kiosk.id, key

    return add


@pytest.fixture
def token(store: Store, clock: MovableClock) -> str:
    return store.add_token("back-office", now=clock())[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningService]:
    """The real `kiosk-exporter serve` process; no rate limit so tests can send freely."""
    with RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}) as service:
        yield service


@pytest.fixture
def cli(database_url, capsys):
    """The CLI in-process on a database created as an operator would (only serve, demo and
    db upgrade create one); returns (exit code, stdout, stderr)."""
    assert main(["--database", database_url, "db", "upgrade"], {}) == 0
    capsys.readouterr()

    def run(*args: str, environ=None):
        code = main(["--database", database_url, *args], environ or {})
        out, err = capsys.readouterr()
        return code, out, err

    return run
