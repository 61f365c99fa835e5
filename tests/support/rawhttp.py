"""Raw HTTP over a socket, for what http.client will not send: broken framing, floods."""

from __future__ import annotations

import socket
import time


def exchange(port: int, data: bytes, *, timeout: float = 5.0, until: bytes | None = None) -> bytes:
    """Send `data`, then read until the server closes, `until` appears, or `timeout`."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            if until is not None and until in received:
                break
    return received


def status_lines(answer: bytes) -> list[str]:
    """Every status line of the answers in `answer` (pipelined requests get several)."""
    return [
        line.decode("latin-1")
        for line in answer.split(b"\r\n")
        if line.startswith(b"HTTP/1.") and line[9:12].isdigit()
    ]
