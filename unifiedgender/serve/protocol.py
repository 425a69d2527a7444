"""HTTP/1.1 connections that cannot be held open by slow or silent clients (slowloris).

uvicorn closes idle keep-alive connections between requests, but waits forever for a request that is still
arriving. `TimedH11Protocol` adds two clocks while a request is incomplete: no bytes for `idle_timeout_s`
closes the connection, and so does a request (headers and body) still incomplete `request_timeout_s` after
its first byte. A connection that sends nothing at all is closed after `idle_timeout_s` too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)  # the client's side of the request is over


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read (idle) timeout and a whole-request deadline."""

    idle_timeout_s = 15.0
    request_timeout_s = 120.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog: asyncio.TimerHandle | None = None
        self._request_started: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._request_started is None and self.conn.their_state not in RECEIVED:
            self._request_started = self.loop.time()
        super().data_received(data)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _arm(self) -> None:
        """Restart the clock while the client still owes us part of a request; stop it once it is in."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self.conn.their_state in RECEIVED:
            self._request_started = None  # the app has the request; uvicorn's keep-alive timer takes over after it
            return
        wait = self.idle_timeout_s
        if self._request_started is not None:
            wait = min(wait, self._request_started + self.request_timeout_s - self.loop.time())
        self._watchdog = self.loop.call_later(max(wait, 0.0), self._timed_out)

    def _timed_out(self) -> None:
        self._watchdog = None
        if not self.transport.is_closing() and self.conn.their_state not in RECEIVED:
            self.logger.info("closing a connection whose request did not arrive in time")
            self.transport.close()


def timed_protocol(idle_timeout_s: float, request_timeout_s: float) -> type[TimedH11Protocol]:
    """A TimedH11Protocol class with these timeouts (uvicorn takes a class, not an instance)."""
    return type("TimedH11Protocol", (TimedH11Protocol,),
                {"idle_timeout_s": float(idle_timeout_s), "request_timeout_s": float(request_timeout_s)})
