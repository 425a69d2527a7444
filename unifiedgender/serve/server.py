"""Running the app with uvicorn: in the foreground for `ugn serve`, or on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from unifiedgender.serve.limits import ServeLimits
from unifiedgender.serve.protocol import timed_protocol

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def server_config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn settings with the app's ServeLimits: read/idle timeouts (TimedH11Protocol), keep-alive idle
    timeout and a connection limit (503 beyond it)."""
    limits = getattr(app.state, "limits", None) or ServeLimits()
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, server_header=False, timeout_graceful_shutdown=5,
        http=timed_protocol(limits.idle_timeout_s, limits.request_timeout_s),
        timeout_keep_alive=min(5, limits.idle_timeout_s), limit_concurrency=limits.max_connections,
    )


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve `app` until interrupted (Ctrl-C stops it cleanly)."""
    uvicorn.Server(server_config(app, host, port, log_level)).run()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """Context manager running `app` with uvicorn on a daemon thread; `url` is set once it accepts connections."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 30.0):
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.startup_timeout = startup_timeout
        self._server = uvicorn.Server(server_config(app, host, self.port, "warning"))
        self._thread = threading.Thread(target=self._server.run, name="ugn-serve", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
