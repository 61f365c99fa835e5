"""/metrics rendered in a process of its own, so a scrape never holds the heartbeats' GIL.

A 100,000-kiosk page is ~1M Python objects and half a million formatted lines: in the
serving process that held the interpreter in long stretches and heartbeats waited (p99 from
~10 ms to ~300-900 ms while scrapes ran back to back). The renderer process reads the
database itself (SQLite in WAL mode: readers never block the writer; on PostgreSQL/MariaDB
one more short read-only session per scrape), judges every kiosk with the same rule, formats
and compresses the page; the request thread only waits on a pipe, which releases the GIL, and
gets the page back as a shared memory file that waitress sends from.

The renderer is single-threaded and trims the heap after each page, so its memory does not
grow from scrape to scrape (glibc keeps freed memory otherwise). If it dies, the next scrape
starts another one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

from . import memory
from .clock import utc_now
from .collector import FleetCollector
from .config import Settings
from .errors import ExporterError, StorageUnavailable
from .exposition import BytesPage, LocalFleetPage, Page, PageRequest
from .store import Store, open_store

log = logging.getLogger(__name__)

# Longer than any scrape_timeout worth setting: past it the renderer is presumed stuck.
RENDER_TIMEOUT_SECONDS = 120.0
# Rendering is background work: when the cores are busy, heartbeats go first. The niceness
# is set before the renderer's imports, which take ~1 s of CPU while the service starts.
RENDERER_NICENESS = 10
_BOOT = (
    f"import os, sys; os.nice({RENDERER_NICENESS}); "
    "from exporter.renderer import main; main(sys.argv)"
)


class ProcessFleetPage:
    """A FleetPage served by a child process; one page at a time, callers queue on a lock.

    The child is a plain `python -c <_BOOT> FD` (not multiprocessing, whose spawn
    starts a resource tracker and unblocks SIGTERM while doing so), talking over a socket
    pair with multiprocessing's message framing.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """Start the child now rather than at the first scrape (its imports take ~1 s)."""
        with self._lock:
            self._ensure_child()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def page(self, request: PageRequest) -> Page:
        with self._lock:
            for _ in range(2):  # a dead child is replaced once per scrape
                conn = self._ensure_child()
                try:
                    conn.send(request)
                    if not conn.poll(RENDER_TIMEOUT_SECONDS):
                        log.error("metrics renderer silent for %gs", RENDER_TIMEOUT_SECONDS)
                        self._discard()
                        break
                    status, detail = conn.recv()
                    if status != "ok":
                        raise StorageUnavailable(str(detail))
                    return MappedPage.receive(conn, detail)
                except (EOFError, OSError):
                    log.warning("metrics renderer process ended; starting another")
                    self._discard()
        raise StorageUnavailable("the metrics renderer did not answer")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(5)
            self._discard()

    def _ensure_child(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self._discard()
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        conn = Connection(ours.detach())
        conn.send(self._settings)
        self._process, self._conn = process, conn
        return conn

    def _discard(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None


def run_renderer(conn: Connection, settings: Settings) -> None:
    """The child's loop: a PageRequest in, ("ok", size) and the page's memory file out (or
    ("error", why)); None ends it."""
    # The parent decides when this ends (after its drain): a Ctrl-C or SIGTERM sent to the
    # whole process group must not take /metrics away while the parent still serves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store: Store | None = None
    fleet: LocalFleetPage | None = None
    try:
        while (request := _next(conn)) is not None:
            try:
                if store is None or fleet is None:
                    store = open_store(
                        settings.database_url, timeout_seconds=settings.database_timeout_seconds
                    )
                    fleet = LocalFleetPage(FleetCollector(store, settings, utc_now))
                pieces = fleet.pieces(request)
            except ExporterError as exc:
                conn.send(("error", str(exc)))
                continue
            MappedPage.send(conn, pieces)
            del pieces
            memory.trim()
    finally:
        if store is not None:
            store.close()


def main(argv: list[str]) -> None:
    """Entry point of the child: the socket's descriptor, then Settings as first message."""
    conn = Connection(int(argv[1]))
    run_renderer(conn, conn.recv())


class MappedPage:
    """A page in a memory file shared by the renderer: the serving process maps it and
    waitress sends from the mapping.

    Relaying the page through the pipe cost each scrape a join of the pieces, a copy into
    the pipe, a copy out of it and a copy per block sent: ~0.3 s of CPU for the 113 MB of
    100,000 kiosks (docs/performance.md). The renderer now writes the pieces once into a
    memory file (Linux's memfd; a temporary file elsewhere) and passes its descriptor over
    the socket (SCM_RIGHTS). The file is gone when the last reader drops its mapping.
    """

    def __init__(self, view: mmap.mmap) -> None:
        self._view = view

    def __len__(self) -> int:
        return len(self._view)

    def open(self) -> BinaryIO:
        return _MappingReader(self._view)

    @staticmethod
    def send(conn: Connection, pieces: list[bytes]) -> None:
        """The renderer's side: write the pieces, announce the size, pass the descriptor. A
        page the host has no memory for is this scrape's error, not the renderer's end."""
        try:
            fd = _memory_file()
        except OSError as exc:
            conn.send(("error", f"no memory file for the metrics page: {exc.strerror or exc}"))
            return
        try:
            try:
                size = _write_all(fd, pieces)
            except OSError as exc:  # ENOSPC / ENOMEM (shared memory full), EFBIG (a limit)
                conn.send(("error", f"the metrics page did not fit in memory: {exc.strerror}"))
                return
            conn.send(("ok", size))
            reduction.send_handle(conn, fd, 0)
        finally:
            os.close(fd)

    @staticmethod
    def receive(conn: Connection, size: int) -> Page:
        fd = reduction.recv_handle(conn)
        try:
            if size == 0:  # mmap refuses an empty file
                return BytesPage(b"")
            return MappedPage(mmap.mmap(fd, size, prot=mmap.PROT_READ))
        finally:
            os.close(fd)


class _MappingReader(io.RawIOBase):
    """One response's position in a shared mapping; seekable, so waitress sends it in
    blocks as wsgi.file_wrapper (each block read is one copy out of the mapping)."""

    def __init__(self, view: mmap.mmap) -> None:
        super().__init__()
        self._view: mmap.mmap | bytes = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._position + size
        block = self._view[self._position : end]
        self._position += len(block)
        return block

    def close(self) -> None:
        """Drop this response's hold on the mapping (it is unmapped when no reader or
        flight holds it any more)."""
        self._view = b""
        super().close()

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)


def _memory_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("kiosk-exporter-metrics")
    with tempfile.TemporaryFile() as file:  # the descriptor outlives the (unlinked) file
        return os.dup(file.fileno())


def _write_all(fd: int, pieces: list[bytes]) -> int:
    written = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            count = os.write(fd, view)
            written += count
            view = view[count:]
    return written


def _next(conn: Connection) -> PageRequest | None:
    try:
        request: PageRequest | None = conn.recv()
    except EOFError:  # the parent is gone
        return None
    return request


if __name__ == "__main__":
    main(sys.argv)
