"""A TCP front: the honest host's public address, forwarding to wherever its gateway listens.

A host registers its endpoint on chain with ``request_access``, before it
has its copy, so before its gateway can run; the gateway binds port 0 and
gets a new port whenever the node restarts. A real operator puts a stable
address in front (a load balancer, a reverse proxy); this is the demo's:
it binds port 0 once, reports what it got, and forwards each connection to
the current target (refusing connections while there is none). Threads,
not trio: the demo's driver is plain blocking code.
"""

from __future__ import annotations

import contextlib
import socket
import threading

BUF = 64 * 1024


class TcpFront:
    """Listen on ``127.0.0.1:0``; pipe each accepted connection to :attr:`target`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.target: tuple[str, int] | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, name="front-accept", daemon=True).start()

    @property
    def url(self) -> str:
        """The OpenAI base URL clients and the chain see."""
        return f"http://127.0.0.1:{self.port}/v1"

    def point_at(self, base_url: str) -> None:
        """Forward new connections to the server of ``base_url`` (``http://HOST:PORT/...``)."""
        hostport = base_url.split("//", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        self.target = (host, int(port))

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks, self._open = list(self._open), set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            target = self.target
            if target is None:
                client.close()  # like a front whose backend is down: connection refused
                continue
            try:
                upstream = socket.create_connection(target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(BUF):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                done = src in self._open and dst not in self._open
                self._open.discard(src)
            if done or self._closed:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.close()


__all__ = ["TcpFront"]
