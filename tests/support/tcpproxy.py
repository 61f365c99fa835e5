"""A TCP proxy a test can cut, black-hole, freeze and restore: a database server 'going away'.

The real server keeps running for everyone else (other tests, other suites on this machine);
only the service under test loses it, the way a network or a failover loses it.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`, one pair of threads per connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._forwarding = True
        self._thawed = threading.Event()
        self._thawed.set()

    def start(self) -> TcpProxy:
        """Listen (again, on the same port after a cut) and forward."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._forwarding = True
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a stopped server does."""
        if self._listener is not None:
            # close() alone leaves the socket listening while accept() blocks on it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        self._drop_all()

    def black_hole(self) -> None:
        """Drop the open connections, then accept new ones and never answer: a server
        behind a dead network. Only timeouts can end the wait."""
        self._forwarding = False
        self._drop_all()

    def freeze(self) -> None:
        """Keep every connection open and accept new ones, but pass nothing on: a server
        that hangs (a frozen disk, a stalled SAN). The proxy's kernel acknowledges what the
        client sends, so no TCP timeout fires; only the client's own bounds end a wait."""
        self._thawed.clear()

    def restore(self) -> None:
        if self._listener is None:
            self.start()
        self._forwarding = True
        self._thawed.set()  # what a frozen connection held goes on now

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            with self._lock:
                self._sockets.add(client)
            if self._forwarding:
                threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.add(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._thawed.wait()
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cut()
