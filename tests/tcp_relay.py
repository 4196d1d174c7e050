"""A TCP relay a test can cut and restore: a server "briefly unreachable" without stopping it.

Stopping the machine's PostgreSQL would break every other session using it. The processes under
test connect through this relay instead, and cutting it is what a network partition looks like
to them: new connections are refused (nothing listens on the port) and open ones are closed
mid-stream. Restoring listens on the same port again, so their configuration needs no change.
"""

from __future__ import annotations

import socket
import threading

from dagster_ui import free_port

ACCEPT_POLL_SECONDS = 0.2  # how soon the accepting thread notices a cut


class TcpRelay:
    """127.0.0.1:`port` relayed to `target_host`:`target_port`, one thread per direction."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.accepted = 0  # connections relayed since the start, for the test's evidence
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._acceptor: threading.Thread | None = None

    def start(self) -> None:
        """Listen (again) on `port`."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The closed connections of the last period linger in TIME_WAIT on this port.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL_SECONDS)
        with self._lock:
            self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Stop listening and close every relayed connection in both directions."""
        with self._lock:
            listener, self._listener = self._listener, None
            relayed = list(self._open)
        if self._acceptor is not None:  # the port stops listening once its accept() returns
            self._acceptor.join()
        if listener is not None:
            listener.close()
        for connection in relayed:
            self._close(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by cut()
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _close(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)
        try:
            connection.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv()
        except OSError:
            pass
        connection.close()
