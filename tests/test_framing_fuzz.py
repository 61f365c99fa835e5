"""A raw HTTP fuzzer for framing, with a fixed seed: chunked bodies, duplicated and bad
Content-Length, Transfer-Encoding with Content-Length, non-UTF-8 bytes in the request line
and headers, bare LF, obs-fold, NUL, Expect: 100-continue, pipelined requests.

Against the real server: no answer is a 5xx (but the 501 that RFC 9112 asks for a transfer
coding other than chunked), every answer is well-formed HTTP, nothing hangs
once the client has finished sending, no traceback reaches the log, the service stays up,
and a heartbeat answered 200 is stored. Repeatable: the same 400 cases every run.
"""

from __future__ import annotations

import json
import random
import re
import socket
import time

from exporter.store import open_store
from tests.support.http import request

SEED = 12
CASES = 400
HANG_SECONDS = 5.0
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5]\d\d) [^\r\n]*\r\n")
UNKNOWN_CODING = b"Transfer-Encoding requested is not supported"


class Generator:
    """Builds one raw request (or several, pipelined) from a seeded random source."""

    def __init__(self, rng: random.Random, key: str) -> None:
        self.rng = rng
        self.key = key

    def pick(self, *choices):
        return self.rng.choice(choices)

    def body(self) -> bytes:
        return self.pick(
            b"",
            json.dumps({"app_version": "1.0.0", "device_info": "fuzz"}).encode(),
            b'{"app_version": "1.0.0"',
            b"\xff\xfe{}",
            b'{"device_info": "caf\xc3\xa9"}',
            b"[" * 200,
            b"0" * self.rng.randint(1, 3000),
        )

    def framing(self, body: bytes) -> tuple[list[bytes], bytes]:
        size = str(len(body)).encode()
        kind = self.rng.randrange(12)
        if kind == 0:
            return [], body
        if kind == 1:
            return [b"Content-Length: " + size], body
        if kind == 2:  # shorter or longer than the body
            wrong = max(0, len(body) + self.rng.randint(-5, 5))
            return [b"Content-Length: %d" % wrong], body
        if kind == 3:  # duplicated, equal or not
            other = self.pick(size, b"%d" % (len(body) + 1))
            return [b"Content-Length: " + size, b"Content-Length: " + other], body
        if kind == 4:
            bad = self.pick(b"-1", b"+5", b"0x10", b" 5 ", b"1e2", b"", b"99999999999999999999")
            return [b"Content-Length: " + bad], body
        if kind in (5, 6):
            return [b"Transfer-Encoding: chunked"], self.chunked(body)
        if kind == 7:  # both: chunked must win, or the request be refused
            return [b"Transfer-Encoding: chunked", b"Content-Length: " + size], self.chunked(body)
        if kind == 8:
            encoding = self.pick(
                b"gzip", b"chunked, gzip", b"xchunked", b"chunked\x00", b"identity"
            )
            return [b"Transfer-Encoding: " + encoding], body
        if kind == 9:
            return [b"Expect: 100-continue", b"Content-Length: " + size], body
        if kind == 10:
            return [b"Expect: 100-continue", b"Content-Length: x" + size], body
        return [b"Content-Length: " + size, b"Transfer-Encoding: chunked"], body

    def chunked(self, body: bytes) -> bytes:
        out = b""
        rest = body
        while rest:
            part, rest = rest[: self.rng.randint(1, 64)], rest[self.rng.randint(1, 64) :]
            size = b"%x" % len(part)
            size = self.pick(size, size, size + b";ext=1", b"zz", b"-1", size.upper())
            out += size + b"\r\n" + part + b"\r\n"
        trailer = self.pick(b"", b"", b"X-Trailer: 1\r\n", b"\xff: \xfe\r\n")
        return out + self.pick(b"0\r\n", b"0\r\n", b"", b"00000\r\n") + trailer + b"\r\n"

    def oddities(self) -> list[bytes]:
        return self.rng.sample(
            [
                b"X-Latin1: caf\xe9",
                b"X-Bad-Utf8: \xc3\x28\xa0\xa1",
                b"X-Kiosk-API-Key: kk_\xff\xfe",
                b"X-Folded: a\r\n b",
                b"NoColonHere",
                b"X-Nul: a\x00b",
                b"X-Space : b",
                b"X-Long: " + b"a" * 9000,
                b"Content-Type: application/json; charset=\xff",
            ],
            k=self.rng.randint(0, 2),
        )

    def one(self) -> bytes:
        method = self.pick(b"POST", b"POST", b"GET", b"HEAD", b"PUT", b"post", b"G\x00T", b"")
        path = self.pick(
            b"/kiosk/heartbeat",
            b"/kiosk/heartbeat",
            b"/healthz",
            b"/kiosk/status",
            b"/kiosk/all-status?location=%00",
            b"/kiosk/all-status?status=\xff",
            b"/\xff\xfe",
            b"/%0d%0aX:%20y",
            b"*",
            b"http://kiosk/healthz",
            b"/" + b"a" * 5000,
        )
        version = self.pick(b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"")
        headers = [b"Host: kiosk", b"X-Kiosk-API-Key: " + self.key.encode()]
        headers.append(self.pick(b"Content-Type: application/json", b"Content-Type: text/\xff"))
        extra, body = self.framing(self.body())
        lines = [method + b" " + path + b" " + version, *headers, *extra, *self.oddities()]
        newline = self.pick(b"\r\n", b"\r\n", b"\r\n", b"\n")
        return newline.join(lines) + newline + newline + body

    def case(self) -> bytes:
        return b"".join(self.one() for _ in range(self.pick(1, 1, 2, 3)))


def send(port: int, data: bytes) -> tuple[bytes, float]:
    """Send everything, half-close (the client is done), read until the server closes."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # refused mid-send (closed after an error answer): read what came
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received, time.monotonic() - started


def test_raw_framing_never_breaks_the_service(server):
    kiosk_id, key = server.add_kiosk("Kiosk-Framing", "Building F")
    rng = random.Random(SEED)
    generator = Generator(rng, key)
    answered: list[str] = []
    statuses: dict[int, int] = {}
    for number in range(CASES):
        data = generator.case()
        answer, seconds = send(server.port, data)
        assert seconds < HANG_SECONDS, f"case {number} held the connection: {data[:300]!r}"
        codes = [int(code) for code in STATUS_LINE.findall(answer)]
        if answer:
            assert STATUS_LINE.match(answer), f"case {number}: {answer[:200]!r}"
        failures = [c for c in codes if c >= 500 and not (c == 501 and UNKNOWN_CODING in answer)]
        assert not failures, f"case {number}: {codes} for {data[:300]!r}"
        for code in codes:
            statuses[code] = statuses.get(code, 0) + 1
        answered += re.findall(r'"received_at": "([^"]+)"', answer.decode("latin-1"))
    assert request("GET", server.url + "/healthz").status == 200
    assert server.process is not None and server.process.poll() is None
    assert not [line for line in server.log_lines if "Traceback" in line or " 500 " in line]
    # The fuzz reached past the framing: some heartbeats were accepted, some refused.
    assert statuses.get(200, 0) >= 5 and statuses.get(400, 0) >= 50, statuses
    store = open_store(server.database)
    try:
        stored = store.get_kiosk(kiosk_id).last_heartbeat_at
    finally:
        store.close()
    assert answered and stored is not None
    assert stored.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == max(answered)
