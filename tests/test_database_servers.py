"""The suite's own promise about database servers: without one, its tests skip saying why on
a laptop, and fail under CI=true so that CI can never pass by skipping them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ONE_TEST = "tests/test_portability.py::test_the_location_filter_is_exact[postgresql]"
NOWHERE = "postgresql://nobody@127.0.0.1:9/test"  # the discard port: nothing listens


def run_with_postgresql_at(url: str, ci: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIOSK_TEST_POSTGRESQL_URL": url, "CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", ONE_TEST],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "error")])
def test_an_unreachable_server_skips_locally_and_fails_in_ci(ci, outcome):
    result = run_with_postgresql_at(NOWHERE, ci)
    summary = result.stdout.strip().splitlines()[-1]
    assert f"1 {outcome}" in summary and "passed" not in summary, result.stdout
    assert "postgresql server at postgresql://nobody@127.0.0.1:9/test unreachable" in result.stdout
    assert (result.returncode == 0) is (ci != "true")
