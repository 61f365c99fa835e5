"""Run a CLI command with a real terminal on standard input, as an operator at a shell."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from .service import COMMAND


@dataclass
class TerminalRun:
    returncode: int
    output: str  # what the terminal showed (the question) plus stdout and stderr


def on_a_terminal(
    args: Sequence[str], database: str, answer: str, timeout: float = 60.0
) -> TerminalRun:
    """`kiosk-exporter --database DATABASE ARGS` with a pty as stdin; `answer` is typed."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*COMMAND, "--database", database, *args],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(controller, f"{answer}\n".encode())  # the terminal buffers it for input()
        output, _ = process.communicate(timeout=timeout)
    finally:
        os.close(terminal)
        os.close(controller)
    return TerminalRun(process.returncode, output)
