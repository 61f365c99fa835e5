"""Watch a subprocess's output line by line, with bounded waits (agent, simulator, demo tests),
and see what a process holds open."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from .service import COMMAND


class LineWatcher:
    """Collects lines from a stream in a thread so a test can wait for one without blocking."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first line matching `pattern`, or AssertionError with everything seen so far."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r}:\n" + self.text())
                self._changed.wait(remaining)

    def text(self) -> str:
        return "\n".join(self.lines)


class Command:
    """`kiosk-exporter ARGS` as a real process, stdout and stderr each watched."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout = LineWatcher(self.process.stdout)
        self.stderr = LineWatcher(self.process.stderr)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig` and wait; a process that ignores it is killed and the test fails."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
            raise AssertionError(f"did not stop on {sig!r}:\n{self.stderr.text()}") from None

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def open_files(pid: int) -> list[str]:
    """What each of a process's descriptors points at (`socket:[inode]`, a path, ...)."""
    found = []
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.append(os.readlink(descriptor))
        except OSError:  # closed meanwhile
            continue
    return found
