"""Durable streams, the reading side: follow a run's stream live, from any index.

A reader reads the stream's rows from where it stands, yields what it may, and when it
has read all there is, waits for news: the Engine's `changed` event (set when another
process commits: PostgreSQL's LISTEN/NOTIFY, SQLite's ``data_version``, the same
wake-ups a hook's resume travels by) or this process's own writers (`bell`). No
polling: a fallback look after `_FALLBACK` seconds of quiet only bounds the delay should
a wake-up ever be missed.

It ends at a ``close`` row, or once the run has ended and every row is read. The run's
status is read *before* its rows, so a reader that sees the run ended has seen every
chunk: step chunks are stored before the step's result, and the body's before the
events of its activation.

Two kinds of reader:

- live (``committed=False``): every chunk as soon as it is stored, and a
  `StreamRetracted` when chunks it gave were voided by a failed attempt;
- committed: only the chunks of the workflow body and of step attempts that succeeded,
  each once, in order. It waits at a chunk whose attempt is still running, and skips
  chunks retracted, and those left open by a run that ended.

Both kinds yield the same indices to every reader: a reader that resumes from the index
after the last one it saw continues exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

from perdure._chunks import ChunkRow, check_stream_name
from perdure._serde import decode
from perdure._streams import StreamItem, StreamRetracted, bell

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from perdure.stores import Store

__all__ = ["follow", "read_stream", "retraction_of"]

_BATCH = 1000
"""Rows read per store call."""
_FALLBACK = 5.0
"""Seconds of quiet after which a reader looks at the store anyway."""


class _Engine(Protocol):
    @property
    def store(self) -> Store: ...

    def changed(self, run_id: str | None = None) -> asyncio.Event: ...


def retraction_of(row: ChunkRow) -> StreamRetracted:
    """The notice a ``retraction`` row stands for."""
    value = row.value if isinstance(row.value, dict) else {}
    indices = value.get("indices")
    step = value.get("step")
    return StreamRetracted(
        row.index,
        step if isinstance(step, str) else (row.step or ""),
        row.attempt,
        tuple(i for i in indices if isinstance(i, int)) if isinstance(indices, list) else (),
    )


async def follow(
    engine: _Engine, run_id: str, name: str, *, start: int = 0, committed: bool = False
) -> AsyncIterator[ChunkRow]:
    """The rows a reader yields (chunks, and retractions for a live one), as stored.

    ``start`` below 0 counts from the end: -10 is the last ten rows.

    Raises:
        ValueError: ``name`` is not a stream name.
        TypeError: ``start`` is not an int.
    """
    store = engine.store
    position = await _first(store, run_id, name, start)
    while True:
        changed = engine.changed()
        rung = bell.future()
        try:
            record = await store.get_run(run_id)
            ended = record is None or record.status.is_terminal
            rows = await store.read_chunks(run_id, name, start=position, limit=_BATCH)
            stalled = False
            for row in rows:
                if row.kind == "close":
                    return
                if committed and row.state == "open" and not ended:
                    stalled = True  # its attempt may yet succeed: wait for it
                    break
                position = row.index + 1
                if row.kind == "retraction":
                    if not committed:
                        yield row
                elif not committed or row.state == "committed":
                    yield row
            if len(rows) == _BATCH and not stalled:
                continue
            if ended:
                return
            await _wait(changed, rung)
        finally:
            if not rung.done():
                rung.cancel()


async def _first(store: Store, run_id: str, name: str, start: int) -> int:
    """The index to read from: ``start``, or counted from the end when below 0."""
    check_stream_name(name)
    if not isinstance(start, int) or isinstance(start, bool):
        raise TypeError(f"start must be an int, got {start!r}")
    if start >= 0:
        return start
    length = (await store.stream_lengths(run_id)).get(name, 0)
    return max(0, length + start)


async def _wait(changed: asyncio.Event, rung: asyncio.Future[None]) -> None:
    waiter = asyncio.ensure_future(changed.wait())
    try:
        await asyncio.wait((waiter, rung), timeout=_FALLBACK, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


async def read_stream(
    engine: _Engine, run_id: str, name: str, *, start: int = 0, committed: bool = False
) -> AsyncIterator[StreamItem | StreamRetracted]:
    """`Run.stream`: the rows of `follow` as items, each chunk's value decoded."""
    async for row in follow(engine, run_id, name, start=start, committed=committed):
        if row.kind == "retraction":
            yield retraction_of(row)
        else:
            value: Any = decode(row.value, Any, where=f"chunk {row.index} of stream {name!r}")
            yield StreamItem(row.index, value)
