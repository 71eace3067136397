"""``GET /runs/{id}/streams`` and ``GET /runs/{id}/streams/{name}`` (Server-Sent Events).

A stream is sent as it is stored, one event per entry, each with its index as the
event id, so a client that reconnects with ``Last-Event-ID`` (browsers' EventSource
does so by itself) continues after the last entry it received:

- ``event: chunk``, ``data: {"index": i, "value": v}``: ``v`` is the value as perdure
  stores it (JSON; a value without a JSON form of its own, a datetime say, is tagged
  ``{"$t": ..., "v": ...}``);
- ``event: retracted``, ``data: {"index": i, "step": ..., "attempt": ..., "indices":
  [...]}``: the chunks of a failed step attempt are void (never sent with
  ``committed=true``);
- ``event: end``, ``data: {}``: the stream is closed, or the run ended; nothing follows.

The events come from `perdure._stream_reader.follow`, as `Run.stream` reads them, so
the HTTP stream and the Python one agree on every index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse

from perdure._chunks import check_stream_name
from perdure._errors import RunNotFoundError
from perdure._stream_reader import follow, retraction_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.requests import Request

    from perdure._chunks import ChunkRow
    from perdure._engine import Engine

__all__ = ["START_BOUND", "sse_event", "stream_endpoint", "streams_endpoint"]

_RETRY_MS = 1000
"""How long a browser's EventSource waits before reconnecting, in milliseconds."""


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status, media_type="application/json")


def sse_event(row: ChunkRow) -> str:
    """One entry of a stream as a Server-Sent Event (ending with its blank line)."""
    data: dict[str, Any]
    if row.kind == "retraction":
        notice = retraction_of(row)
        kind = "retracted"
        data = {
            "index": notice.index,
            "step": notice.step,
            "attempt": notice.attempt,
            "indices": list(notice.indices),
        }
    else:
        kind, data = "chunk", {"index": row.index, "value": row.value}
    # ASCII escapes, as the rest of the API: one line of data whatever the value holds.
    return f"id: {row.index}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


START_BOUND = 2**53 - 1
"""The largest ``?start=`` either way: the largest integer a JSON number holds exactly."""


def _start(request: Request) -> int | str:
    """Where to begin: after ``Last-Event-ID``, else ``?start=`` (an error: a message)."""
    last = request.headers.get("last-event-id")
    if last is not None and last.strip():
        try:
            seen = int(last.strip())
        except ValueError:
            return f"Last-Event-ID must be the index of an event, got {last!r}"
        if seen < 0:
            return f"Last-Event-ID must be the index of an event, got {last!r}"
        return seen + 1
    text = request.query_params.get("start", "0")
    try:
        start = int(text)
    except ValueError:
        return f"start must be an integer, got {text!r}"
    if abs(start) > START_BOUND:
        return f"start must be between {-START_BOUND} and {START_BOUND}, got {start}"
    return start


def _committed(request: Request) -> bool | str:
    text = request.query_params.get("committed", "false").lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return f"committed must be true or false, got {text!r}"


def stream_endpoint(engine: Engine) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /runs/{run_id}/streams/{name}`` for ``engine``."""

    async def stream(request: Request) -> Response:
        """A run's durable stream as Server-Sent Events, live until it ends."""
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        try:
            check_stream_name(name)
        except ValueError as exc:
            return _error(400, str(exc))
        start, committed = _start(request), _committed(request)
        if isinstance(start, str):
            return _error(400, start)
        if isinstance(committed, str):
            return _error(400, committed)
        try:
            run = await engine.get_run(run_id)
        except RunNotFoundError:
            return _error(404, f"no run with id {run_id!r}")

        async def events() -> AsyncIterator[str]:
            yield f"retry: {_RETRY_MS}\n\n"
            async for row in follow(engine, run.id, name, start=start, committed=committed):
                yield sse_event(row)
            yield "event: end\ndata: {}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return stream


def streams_endpoint(engine: Engine) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /runs/{run_id}/streams`` for ``engine``."""

    async def streams(request: Request) -> Response:
        """A run's durable streams and how many entries each holds so far."""
        run_id = request.path_params["run_id"]
        try:
            run = await engine.get_run(run_id)
        except RunNotFoundError:
            return _error(404, f"no run with id {run_id!r}")
        lengths = await run.streams()
        body = {"streams": [{"name": name, "length": n} for name, n in lengths.items()]}
        return Response(json.dumps(body), media_type="application/json")

    return streams
