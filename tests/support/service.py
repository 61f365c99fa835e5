"""Run the real `kiosk-exporter serve` as a subprocess on a free port, as users run it."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .http import Reply, request

_LISTENING = re.compile(r"serving on http://[^:]+:(\d+)")
COMMAND = [sys.executable, "-m", "exporter.cli"]


def run_cli(
    *args: str, database: str, env: Mapping[str, str] | None = None, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command against `database` the way an operator would."""
    return subprocess.run(
        [*COMMAND, "--database", database, *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=input_text,
        env={**os.environ, **(env or {})},
        check=False,
    )


# Every service started by the test that runs now: a failing test's report shows their logs
# (tests/conftest.py), since a server's own words are what explain a failure.
STARTED: list[RunningService] = []


class RunningService:
    """A real server process; `settings` become KIOSK_EXPORTER_* variables."""

    def __init__(
        self,
        workdir: Path,
        settings: Mapping[str, Any] | None = None,
        database: str | None = None,
        serve_args: Sequence[str] = (),
        file_limit: int | None = None,
    ) -> None:
        """`file_limit`: start the process with this soft limit on open files (as most
        init systems start services with 1,024), to see what the service makes of it."""
        self.workdir = workdir
        self.file_limit = file_limit
        self.serve_args = tuple(serve_args)
        self.database = database or f"sqlite:///{workdir / 'kiosks.db'}"
        self.env = {f"KIOSK_EXPORTER_{k.upper()}": str(v) for k, v in (settings or {}).items()}
        self.env.setdefault("KIOSK_EXPORTER_LOG_LEVEL", "INFO")
        self.process: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.log_lines: list[str] = []
        self._database_created = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0, timeout: float = 20.0) -> RunningService:
        if self not in STARTED:  # started again (a restart): one log, already kept
            STARTED.append(self)
        self.process = subprocess.Popen(
            [
                *COMMAND,
                "--database",
                self.database,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *self.serve_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env},
            preexec_fn=None if self.file_limit is None else self._limit_files,
        )
        found = threading.Event()
        threading.Thread(target=self._read_log, args=(found,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                time.sleep(0.1)  # let the reader collect the last lines
                raise RuntimeError("server did not start:\n" + "\n".join(self.log_lines))
        return self

    def _limit_files(self) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.file_limit, hard))

    def _read_log(self, found: threading.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.log_lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match and not found.is_set():
                self.port = int(match.group(1))
                found.set()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def cli(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, database=self.database, env=self.env, input_text=input_text)

    def create_database(self) -> None:
        """`db upgrade`, as an operator does before the first `kiosk add` (only serve, demo
        and db upgrade create a database); harmless once it exists."""
        prefix = "sqlite:///"
        if self.database.startswith(prefix) and Path(self.database[len(prefix) :]).exists():
            self._database_created = True  # serve made it: no second process needed
        if not self._database_created:
            result = self.cli("db", "upgrade")
            assert result.returncode == 0, result.stderr
            self._database_created = True

    def add_kiosk(self, name: str, location: str) -> tuple[int, str]:
        self.create_database()
        result = self.cli("kiosk", "add", "--name", name, "--location", location, "--json")
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        return created["id"], created["api_key"]

    def add_token(self, name: str = "back-office", scope: str = "read") -> str:
        self.create_database()
        result = self.cli("token", "add", "--name", name, "--scope", scope, "--json")
        assert result.returncode == 0, result.stderr
        return str(json.loads(result.stdout)["token"])

    def heartbeat(self, key: str, body: Any = None, **kwargs: Any) -> Reply:
        return request(
            "POST",
            self.url + "/kiosk/heartbeat",
            headers={"X-Kiosk-API-Key": key},
            json_body=body if body is not None else {"app_version": "1.0.0", "device_info": "Test"},
            **kwargs,
        )

    def all_status(self, token: str, query: str = "") -> Reply:
        return request(
            "GET",
            f"{self.url}/kiosk/all-status{query}",
            headers={"Authorization": f"Bearer {token}"},
        )

    def metrics(self, accept: str | None = None) -> Reply:
        headers = {"Accept": accept} if accept else {}
        return request("GET", self.url + "/metrics", headers=headers)

    def wait_until(self, predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def __enter__(self) -> RunningService:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
