"""Logging for `serve`: request threads hand records to one writer thread.

A StreamHandler writes and flushes under a lock in the thread that logs. With one access
line per request, 16 request threads queued on that lock and each gave up the GIL for a
write() system call: 130 us of the ~390 us of CPU a saturated heartbeat cost (log level
INFO vs WARNING, bench/heartbeats.py). Here a request thread only renders the message and
enqueues the record; the writer thread formats what
accumulated and writes it with one write() and one flush(), at most every 50 ms under
load, in order. Lines reach the stream within 50 ms; on SIGKILL those 50 ms are lost.
"""

from __future__ import annotations

import logging
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_DEFAULT = logging.Formatter(LOG_FORMAT)
# Control characters (C0, DEL, C1), line and paragraph separators, lone surrogates, and the
# quote and backslash that delimit and escape a field of the access line.
_UNPRINTABLE = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"\\\\]')
# A pre-rendered line: (time.time(), level name, logger name, message).
_Line = tuple[float, str, str, str]
_Item = logging.LogRecord | _Line | None


def printable(text: str) -> str:
    """`text` as one safe log field: what a client controls (a URL path, a method, a driver's
    message quoting a value) could otherwise write a forged log line (%0A, %0D) or terminal
    escapes (%1B). Each such character becomes a visible escape (\\n, \\x1b, \\u2028)."""
    if not _UNPRINTABLE.search(text):  # the usual case: one scan, no copy
        return text
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\" + char if char in '"\\' else repr(char)[1:-1]  # repr escapes the rest


class BackgroundLogWriter(logging.Handler):
    """A handler whose emit() never blocks on the output stream.

    If the stream stalls (a full pipe, a stuck journald), at most `max_pending` records
    wait in memory; later ones are dropped and counted, and the count is logged once the
    stream moves again, so a slow log never stops heartbeats nor exhausts memory.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        level: int | str = logging.NOTSET,
        max_pending: int = 100_000,
        max_batch: int = 10_000,
        coalesce_seconds: float = 0.05,
    ) -> None:
        super().__init__(level)
        self._stream = stream if stream is not None else sys.stderr
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._dropped = 0
        self._coalesce_seconds = coalesce_seconds
        self._pause = threading.Event()  # set by close(): the last lines go out at once
        self._second = (-1, "")  # the formatted asctime of the last whole second seen
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Render now, in the caller's thread: the arguments may change or die later.
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info:
                record.exc_text = (self.formatter or _DEFAULT).formatException(record.exc_info)
                record.exc_info = None
        except Exception:
            self.handleError(record)
            return
        self._enqueue(record)

    def _enqueue(self, item: logging.LogRecord | _Line) -> None:
        if self._queue.qsize() >= self._max_pending:
            self._dropped += 1  # a lost increment under a race only under-counts drops
            return
        self._queue.put(item)

    def line_sink(self, logger_name: str, level: int = logging.INFO) -> Callable[[str], None]:
        """A callable logging one ready-made line through `logger_name` at `level`.

        For the access log: the same output as logger.info(line), without a LogRecord
        (about 8 us, with its caller lookup) per request. The logger's level still decides.
        """
        logger = logging.getLogger(logger_name)
        level_name = logging.getLevelName(level)

        def sink(line: str) -> None:
            if logger.isEnabledFor(level):
                self._enqueue((time.time(), level_name, logger_name, line))

        return sink

    def close(self) -> None:
        """Write everything queued, then stop the thread; later records go nowhere."""
        if self._thread.is_alive():
            self._pause.set()
            self._queue.put(None)
            self._thread.join(10)
        super().close()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            self._write(records)
            if len(records) < len(batch):
                return
            self._pause.wait(self._coalesce_seconds)

    def _write(self, records: list[logging.LogRecord | _Line]) -> None:
        dropped, self._dropped = self._dropped, 0
        if dropped:
            warning = f"{dropped} log records dropped: the log stream was too slow"
            records = [*records, (time.time(), "WARNING", __name__, warning)]
        lines = []
        for record in records:
            if isinstance(record, tuple):
                created, level_name, name, message = record
                lines.append(f"{self._asctime(created)} {level_name} {name}: {message}\n")
                continue
            try:
                lines.append(self.format(record) + "\n")
            except Exception:
                self.handleError(record)
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "writing the log failed"}))

    def _asctime(self, created: float) -> str:
        """What logging.Formatter's default asctime gives (local time, milliseconds)."""
        second = int(created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        return f"{self._second[1]},{int((created - second) * 1000):03d}"


def configure_serve_logging(level: int | str, stream: TextIO | None = None) -> BackgroundLogWriter:
    """Route every log record of the process through one BackgroundLogWriter.

    The caller closes the returned handler when the server stops, so that the last lines
    ("stopped", errors during shutdown) are written before the process ends.
    """
    handler = BackgroundLogWriter(stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # waitress warns once per queued request while saturated: a flood that costs ~5 % of the
    # CPU exactly when it is scarce. kiosk_exporter_request_duration_seconds shows queueing.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return handler
