"""The README's Quick start, every command as written, run top to bottom against a real
server: the docs cannot drift from the code again.

Only what a reader does by hand is added: the key printed by `kiosk add` replaces
`your-key` (the README says so), and after the line that starts the server in the
background the script waits until it answers, as a person reads the start-up line first.
The server listens on a free port (KIOSK_EXPORTER_PORT) instead of 8000, which may be taken.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def quick_start_commands() -> list[str]:
    text = README.read_text("utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def script_for(commands: list[str], port: int) -> str:
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT", "KEY="]
    for command in commands:
        command = command.replace("localhost:8000", f"localhost:{port}")
        command = command.replace("your-key", "$KEY")
        if command.rstrip().split("#")[0].rstrip().endswith("&"):
            lines += [
                command,
                f"for _ in $(seq 150); do curl -sf localhost:{port}/healthz >/dev/null && break;"
                " sleep 0.2; done",
            ]
        elif re.match(r"^\w+=", command):
            lines.append(command)
        else:
            lines += [
                f"out=$({command}\n)",  # the newline ends a trailing comment
                'printf "%s\\n" "$out"',
                "KEY=${KEY:-$(printf '%s\\n' \"$out\" | grep -o 'kk_[A-Za-z0-9_-]*' || true)}",
            ]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_command_of_the_quick_start_works_as_written(tmp_path):
    commands = quick_start_commands()
    assert any("serve &" in c for c in commands) and any("db upgrade" in c for c in commands)
    # The checkout's .venv, as `make venv` leaves it: the interpreter running the tests.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    assert (tmp_path / ".venv" / "bin" / "kiosk-exporter").exists()
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_EXPORTER_")}
    result = subprocess.run(
        ["bash", "-c", script_for(commands, port)],
        cwd=tmp_path,
        env={**environ, "KIOSK_EXPORTER_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "kiosk-heartbeat.db").exists()  # "creates kiosk-heartbeat.db here"
    out = result.stdout.splitlines()
    assert out[0] == "0001_initial_schema"  # db upgrade lists what it applied
    header = out.index("id,name,location,api_key")
    assert out[header + 1].startswith("1,Kiosk-Entrance,Building A - Main Entrance,kk_")
    out = out[header + 2 :]
    heartbeat = json.loads(out[0])
    assert heartbeat["kiosk_id"] == 1 and heartbeat["next_heartbeat_in_seconds"] == 60
    (kiosk,) = json.loads(out[1])
    assert (kiosk["kiosk_name"], kiosk["status"], kiosk["app_version"]) == (
        "Kiosk-Entrance",
        "online",
        "1.0.0",
    )
