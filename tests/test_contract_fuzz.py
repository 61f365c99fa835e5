"""Contract fuzzing: Schemathesis generates requests from exporter/openapi.json (valid ones and
deliberately invalid ones) against the real server (waitress): no answer is a 5xx and every
answer matches the document (status, media type, headers, body). Every operation runs on
SQLite; the operations that reach the database with client input (/kiosk/...) run on
PostgreSQL and MariaDB too, as the drivers differ in what they accept (PostgreSQL refuses
NUL in text, every driver a number past 64 bits).

Bounded and repeatable: a fixed number of examples per operation, derandomized, no example
database, so CI runs the same requests every time (about half a minute on an idle machine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exporter import schema as migrations
from exporter.config import parse_database_url
from tests.conftest import require_server
from tests.support import databases
from tests.support.databases import SERVER_BACKENDS
from tests.support.openapi import document
from tests.support.service import RunningService

EXAMPLES_PER_OPERATION = 75
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

schema = schemathesis.openapi.from_dict(document())
schema.config.generation.update(
    max_examples=EXAMPLES_PER_OPERATION, deterministic=True, database="none"
)
database_operations = schema.include(path_regex="^/kiosk/")
HYPOTHESIS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


class Target:
    """A running service with one kiosk and one token, shared by every operation's fuzzing.
    The token is an admin's, so the management routes are fuzzed past their scope check."""

    def __init__(self, service: RunningService) -> None:
        self.url = service.url
        self.key = service.add_kiosk("Kiosk-Fuzz", "Building F")[1]
        token = service.add_token(scope="admin")
        self.headers = {"X-Kiosk-API-Key": self.key, "Authorization": f"Bearer {token}"}


def running(backend: str, workdir: Path) -> Iterator[Target]:
    with contextlib.ExitStack() as stack:
        database = None
        if backend != "sqlite":
            require_server(backend)
            database = stack.enter_context(databases.fresh(backend))
            migrations.upgrade(parse_database_url(database), timeout_seconds=10)
        settings = {"min_heartbeat_interval_seconds": 0}
        service = stack.enter_context(RunningService(workdir, settings, database=database))
        yield Target(service)
        assert service.process is not None and service.process.poll() is None, "server died"
    traceback = [line for line in service.log_lines if "Traceback" in line]
    assert not traceback, "\n".join(service.log_lines)


@pytest.fixture(scope="module")
def sqlite_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from running("sqlite", tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module", params=SERVER_BACKENDS)
def server_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    yield from running(request.param, tmp_path_factory.mktemp("fuzz"))


def empty_after_json_whitespace(body: object) -> bool:
    """A body of JSON whitespace at most is an empty body, which the document allows where the
    request body is optional (a heartbeat without fields). Schemathesis's "random bytes"
    sometimes draws exactly that and would call its acceptance a missed rejection."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    return isinstance(body, bytes) and not body.strip(b" \t\r\n")


def call(case, target: Target) -> None:
    # Real credentials, so generated bodies and parameters reach past authentication.
    case.headers = {**(case.headers or {}), **target.headers}
    checks = CHECKS
    if empty_after_json_whitespace(case.body):
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.call_and_validate(base_url=target.url, checks=checks, timeout=10)


@schema.parametrize()
@HYPOTHESIS
def test_every_generated_request_gets_a_documented_answer(case, sqlite_target):
    call(case, sqlite_target)


@database_operations.parametrize()
@HYPOTHESIS
def test_every_database_answers_generated_requests_as_documented(case, server_target):
    call(case, server_target)
