"""How ``perdure web`` runs uvicorn: its limits, a request-head deadline, a quiet log.

uvicorn bounds a connection's idle time between requests (``timeout_keep_alive``) and
the size of a request's head (``h11_max_incomplete_event_size``), but not the time a
client may take to send that head: a connection that sends ``GET / HTTP/1.1`` and then
a byte a minute, or nothing at all, is held open for ever, and a few thousand such
connections exhaust the process's file descriptors (slowloris). `HeadTimeoutProtocol`
gives every request's head a deadline, counted from the moment the connection is open
or its last response was sent; the app gives the body its own (`create_app`'s
``body_timeout``). Both are counted from the start, so a client cannot extend them by
trickling bytes.

uvicorn's access log (``perdure web -v``) prints each request's path and query. The
sign-in link ``perdure web`` prints carries the API token after ``#``, which browsers
never send, but ``/login?token=...`` works too, and a webhook's URL holds the
webhook's token, its only secret: `RedactTokens` replaces both in the log.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterator

__all__ = ["LIMITS", "HeadTimeoutProtocol", "RedactTokens", "Server"]

HEAD_TIMEOUT = 10.0
"""Seconds a client has to send a request's line and headers in full."""

LIMITS: dict[str, Any] = {
    "timeout_keep_alive": 5,  # seconds an idle connection stays open between requests
    "h11_max_incomplete_event_size": 16_384,  # bytes of request line and headers
    "limit_concurrency": 1_000,  # connections and requests at once; 503 beyond
    "timeout_graceful_shutdown": 10,  # seconds requests may take to finish on SIGTERM
}
"""The uvicorn settings ``perdure web`` sets (the body's size and time are the app's)."""


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head is late.

    The deadline is armed when the connection opens and after each response, and
    disarmed when a request's head has been read in full (the protocol then starts a
    new request cycle). Data that arrives meanwhile does not push it back.
    """

    head_timeout = HEAD_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None
    _awaited_after: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not self._awaited_after:
            self._disarm()  # a new request's head is in: its cycle began

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()
        if self.cycle is finished and not self.transport.is_closing():
            self._await_head()  # no pipelined request began: wait for the next head

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._disarm()
        self._awaited_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


_QUERY_TOKEN = re.compile(r"([?&]token=)[^&#\s]*", re.IGNORECASE)
_WEBHOOK_TOKEN = re.compile(r"(/webhooks/)[^/?#\s]+")


def redact(target: str) -> str:
    """A request target with the API token and webhook tokens in it replaced."""
    target = _QUERY_TOKEN.sub(r"\1[redacted]", target)
    return _WEBHOOK_TOKEN.sub(r"\1[redacted]", target)


class RedactTokens(logging.Filter):
    """Replaces tokens in uvicorn's access log lines (see the module's docstring).

    uvicorn logs ``(client, method, path with query, HTTP version, status)`` as the
    record's arguments; only the path is rewritten.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):  # noqa: PLR2004
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


class Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT or SIGTERM without re-raising them after.

    So ``perdure web`` exits 0 when told to stop, as ``perdure worker`` does.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in handled}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
