"""What `create_app` checks of every request before a route sees it: Host and body time.

Both are part of the app, not of the server that runs it, so the app is protected the
same way under ``perdure web``, under plain ``uvicorn module:app`` and mounted in
another app.

- **Host.** An API without a token is open to whoever reaches it, which on a loopback
  address is meant to be this machine's own user. A page on another site can still
  reach it through the visitor's browser by DNS rebinding: its own name, re-pointed at
  127.0.0.1, makes the browser treat the API as that site's own, so the same-origin
  checks pass and the page reads and steers runs. The browser still sends the page's
  name in ``Host``, so the app answers only requests naming a host it was told to
  answer to (`allowed_hosts`). An app with a token needs no such check by default:
  rebinding does not give a page the token, nor the sign-in cookie, which belongs to
  the real name.
- **Body time.** uvicorn waits for a request's body as long as the client takes: one
  that sends a byte a minute holds its connection, and the request's task, for ever.
  The app gives the whole body a deadline (``body_timeout`` seconds from the request's
  arrival) and answers 408 when it passes. A client that hangs up mid-body makes
  Starlette raise `ClientDisconnect`; `create_app` handles it as the end of that
  request (nobody is left to answer), not as a server error.

Both refusals are the JSON ``{"error": ...}`` every other refusal is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "BodyTimeout", "Guard", "host_name", "host_pattern"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names an open app answers to by default: this machine's own."""


class BodyTimeout(Exception):
    """The request's body did not arrive in full within the app's ``body_timeout``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} seconds")


def host_name(header: str | None) -> str | None:
    """The host a ``Host`` header names, lower case and without its port, or None.

    IPv6 addresses keep their brackets (``[::1]:8000`` names ``[::1]``): splitting at
    the first colon, as a naive parser does, would leave ``[``. None for a header that
    is missing or malformed.
    """
    if not header:
        return None
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[: end + 1], text[end + 1 :]
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    else:
        name, colon, port = text.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    name = name.removesuffix(".")  # "localhost." is "localhost"
    return name or None


def host_pattern(host: str) -> str:
    """``host`` as `Guard` compares it: lower case, an IPv6 address in brackets.

    A name, an address (``::1`` or ``[::1]``), ``*.example.com`` (that domain's
    subdomains), or ``*`` (any host).

    Raises:
        ValueError: a ``*`` anywhere else, or an empty name.
    """
    text = host.strip().lower()
    domain = text.removeprefix("*.").removesuffix(".")
    wildcard = text == "*" or (text.startswith("*.") and domain != "" and "*" not in domain)
    if not text.removesuffix(".") or ("*" in text and not wildcard):
        raise ValueError(f"{host!r} is not a host name, an address, '*.domain' or '*'")
    text = text.removesuffix(".")  # "localhost." is "localhost"
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"  # an IPv6 address, as it appears in a Host header
    return text


def _refusal(status: int, message: str) -> tuple[Message, Message]:
    body = json.dumps({"error": message}, ensure_ascii=True).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class Guard:
    """The ASGI middleware that checks the Host header and times request bodies."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], body_timeout: float) -> None:
        self.app = app
        patterns = [host_pattern(host) for host in allowed_hosts]
        self.any_host = "*" in patterns
        self.hosts = frozenset(p for p in patterns if not p.startswith("*"))
        self.domains = tuple(p[1:] for p in patterns if p.startswith("*."))
        self.body_timeout = body_timeout

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header is answered."""
        if self.any_host:
            return True
        name = host_name(header)
        return name is not None and (name in self.hosts or name.endswith(self.domains))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"host"), None)
        host = header.decode("latin-1") if header is not None else None
        if not self.allows(host):
            named = f"Host {host!r}" if host is not None else "no Host header"
            for message in _refusal(
                400,
                f"this server does not answer requests naming {named}; the names it "
                "answers to are set by create_app(allowed_hosts=...)",
            ):
                await send(message)
            return
        await self.app(scope, self._timed(receive), send)

    def _timed(self, receive: Receive) -> Receive:
        """``receive``, raising `BodyTimeout` if the body is not in by the deadline.

        Only while the body arrives: after it, Starlette calls ``receive`` to learn
        when the client goes away, which may rightly take any time.
        """
        if math.isinf(self.body_timeout):
            return receive
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        body_done = False

        async def timed() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        return timed
