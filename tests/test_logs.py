"""The serve log: request threads never wait on the log stream, and no line is lost or reordered."""

from __future__ import annotations

import io
import logging
import re
import threading

import pytest

from exporter.logs import BackgroundLogWriter, configure_serve_logging


class BlockedStream(io.StringIO):
    """A stream whose writes wait until `flowing` is set: a full pipe, a stuck journald."""

    def __init__(self) -> None:
        super().__init__()
        self.flowing = threading.Event()
        self.writes_started = threading.Event()

    def write(self, text: str) -> int:
        self.writes_started.set()
        self.flowing.wait(30)
        return super().write(text)


@pytest.fixture
def logger():
    made = logging.getLogger("tests.logs")
    made.propagate = False
    made.setLevel(logging.DEBUG)
    yield made
    for handler in list(made.handlers):
        made.removeHandler(handler)
        handler.close()


def attach(logger: logging.Logger, stream: io.StringIO, **options) -> BackgroundLogWriter:
    handler = BackgroundLogWriter(stream, **options)
    logger.addHandler(handler)
    return handler


def test_every_line_is_written_in_order_once_closed(logger):
    stream = io.StringIO()
    handler = attach(logger, stream)
    for n in range(2_000):
        logger.info("heartbeat %d from %s", n, "Kiosk-Entrance")
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2_000
    assert [int(re.search(r"heartbeat (\d+)", line)[1]) for line in lines] == list(range(2_000))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO tests\.logs: heartbeat 0 from Kiosk-Entrance",
        lines[0],
    )


def test_arguments_are_rendered_when_logged_not_when_written(logger):
    stream = BlockedStream()
    handler = attach(logger, stream)
    logger.info("first")  # occupies the writer thread until the stream flows
    stream.writes_started.wait(10)
    kiosks = ["Kiosk-Entrance"]
    logger.info("fleet %s", kiosks)
    kiosks.append("Kiosk-Exit")
    stream.flowing.set()
    handler.close()
    assert "fleet ['Kiosk-Entrance']\n" in stream.getvalue()


def test_exceptions_keep_their_traceback(logger):
    stream = io.StringIO()
    handler = attach(logger, stream)
    try:
        raise RuntimeError("database went away")
    except RuntimeError:
        logger.exception("heartbeat batch failed")
    handler.close()
    text = stream.getvalue()
    assert "ERROR tests.logs: heartbeat batch failed\nTraceback (most recent call last):" in text
    assert "RuntimeError: database went away" in text


def test_a_stalled_stream_never_blocks_the_request_threads(logger):
    stream = BlockedStream()
    handler = attach(logger, stream, max_pending=100)
    logger.info("first")
    stream.writes_started.wait(10)

    def log_many() -> None:
        for n in range(1_000):
            logger.info("request %d", n)

    thread = threading.Thread(target=log_many)
    thread.start()
    thread.join(10)
    finished_while_blocked = not thread.is_alive()
    stream.flowing.set()
    thread.join()
    handler.close()
    assert finished_while_blocked
    # close() returned because the writer thread ended, not because its wait timed out
    assert not [t for t in threading.enumerate() if t.name == "log-writer"]
    text = stream.getvalue()
    # What fit in memory is written; the rest is counted, not silently lost.
    assert "request 0\n" in text and "request 99\n" in text
    assert "request 999\n" not in text
    assert "WARNING exporter.logs: 900 log records dropped: the log stream was too slow" in text


def test_serve_logging_routes_everything_through_one_writer():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        handler = configure_serve_logging("INFO", stream)
        assert root.handlers == [handler]
        logging.getLogger("exporter.access").info('127.0.0.1 "POST /kiosk/heartbeat" 200')
        logging.getLogger("exporter").debug("not at INFO")
        # waitress warns once per queued request while saturated; only its errors are kept.
        logging.getLogger("waitress.queue").warning("Task queue depth is 2")
        root.removeHandler(handler)
        handler.close()
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("waitress.queue").setLevel(logging.NOTSET)
    assert stream.getvalue().count("\n") == 1
    assert 'INFO exporter.access: 127.0.0.1 "POST /kiosk/heartbeat" 200' in stream.getvalue()


def test_access_lines_look_like_logged_lines_and_follow_the_logger_level():
    stream = io.StringIO()
    handler = BackgroundLogWriter(stream)
    access = logging.getLogger("tests.logs.access")
    access.addHandler(handler)
    access.propagate = False
    sink = handler.line_sink("tests.logs.access")
    try:
        access.setLevel(logging.INFO)
        access.info('127.0.0.1 "POST /kiosk/heartbeat" 200 1.0ms')
        sink('127.0.0.1 "POST /kiosk/heartbeat" 200 1.1ms')
        access.setLevel(logging.WARNING)  # log_level: WARNING silences the access log
        sink('127.0.0.1 "POST /kiosk/heartbeat" 200 1.2ms')
    finally:
        access.removeHandler(handler)
        handler.close()
    logged, sunk = stream.getvalue().splitlines()
    shape = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO tests\.logs\.access: 127\.0\.0\.1 "
    assert re.match(shape + r'"POST /kiosk/heartbeat" 200 1\.0ms$', logged)
    assert re.match(shape + r'"POST /kiosk/heartbeat" 200 1\.1ms$', sunk)
    assert logged[:19] <= sunk[:19]
