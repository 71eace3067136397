"""Durable streams, the writing side: `get_writable`, its writers, and what readers get.

A stream is a run's named, ordered sequence of chunks (`perdure._chunks` has the rows
and the rules of their states). Two writers, one interface:

- In the workflow body, a write is logged: the workflow's command (`WriteStream`)
  becomes a ``stream_written`` event, and the store adds the chunk to its stream in the
  transaction of the append that logs it, so the log and the stream never disagree. A
  replay does not log a write its log holds (each is ``stream:NAME#n``, the n-th write
  to that stream). A write costs the workflow nothing but the command: the actor logs
  an activation's events, chunks included, in one append.
- In a step, the writer buffers chunks and stores them at most every `FLUSH_INTERVAL`
  seconds (the first write after a quiet spell at once), or when `FLUSH_SIZE` wait: a
  model producing a few hundred tokens a second costs about five commits a second, not
  one per token. When the attempt returns, what is left is stored before its result is
  recorded (`finish_attempt`, called by the attempt loop). When it raises, its chunks
  are retracted: live readers receive a `StreamRetracted` naming the attempt and the
  indices, and committed readers never see them. What an execution that died with its
  process stored is retracted when the call's next attempt begins (`retry_begins`),
  and by the first store of any attempt's writer.

`StreamItem` and `StreamRetracted` are what readers receive (`perdure._stream_reader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from perdure import _current
from perdure._chunks import NewChunk, StreamAttempt, check_stream_name
from perdure._hooks import unstorable
from perdure._replay import current_instance
from perdure._serde import encode
from perdure._workflow import StepMetadata, step_context

if TYPE_CHECKING:
    from perdure._clock import Clock
    from perdure._records import JSON
    from perdure._replay import WorkflowInstance
    from perdure.stores._protocol import StreamStore

__all__ = [
    "FLUSH_INTERVAL",
    "FLUSH_SIZE",
    "StreamItem",
    "StreamRetracted",
    "StreamWriter",
    "bell",
    "body_stored",
    "body_writing",
    "finish_attempt",
    "get_writable",
    "retry_begins",
    "writing",
]

logger = logging.getLogger("perdure.streams")

FLUSH_INTERVAL = 0.2
"""Seconds between two stores of one step writer's chunks: at most five a second. A
reader sees a chunk at most this much later than it was written, plus the wake-up."""
FLUSH_SIZE = 1000
"""Chunks a step writer holds before it stores them without waiting for the interval."""


@dataclass(frozen=True, slots=True)
class StreamItem:
    """A chunk of a stream: its index (from 0) and the value written."""

    index: int
    value: Any


@dataclass(frozen=True, slots=True)
class StreamRetracted:
    """The chunks ``indices`` that attempt ``attempt`` of step ``step`` wrote are void.

    The attempt failed (or died, and a later one of the same call took over): a live
    reader that showed them should take them back. ``index`` is this notice's own place
    in the stream; readers with ``committed=True`` never receive one.
    """

    index: int
    step: str
    attempt: int | None
    indices: tuple[int, ...]


class _Bell:
    """Wakes the readers of this process when a writer of this process stored chunks.

    The store tells other processes (`Store.wait_for_change`) but not the process that
    wrote; futures rather than an `asyncio.Event`, so it serves any event loop.
    """

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def future(self) -> asyncio.Future[None]:
        """A future set at the next `ring`."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def ring(self) -> None:
        """Wake every waiter."""
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.get_loop().call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


bell = _Bell()


class StreamWriter:
    """Appends chunks to one durable stream of the current run; from `get_writable`.

    ``await writer.write(value)`` appends a chunk: any value perdure can serialize (a
    value it cannot is a TypeError naming it, and nothing is written).
    ``await writer.close()``, optional, ends the stream: its readers stop there.
    """

    __slots__ = ("_closed", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._closed = False

    def __repr__(self) -> str:
        return f"<StreamWriter {self.name!r}>"

    def _encode(self, value: Any) -> JSON:
        if self._closed:
            raise RuntimeError(f"stream {self.name!r} is closed: nothing more can be written")
        where = f"a chunk of stream {self.name!r}"
        encoded: JSON = encode(value, Any, where=where)
        problem = unstorable(encoded, where)  # a NUL, a lone surrogate, NaN: no store keeps it
        if problem is not None:
            raise TypeError(f"cannot store {problem}")
        return encoded

    async def write(self, value: Any) -> None:
        """Append ``value`` to the stream.

        Raises:
            TypeError: perdure cannot serialize it (nothing is written).
            RuntimeError: the writer was closed.
        """
        raise NotImplementedError  # pragma: no cover

    async def close(self) -> None:
        """End the stream: readers stop once they reach this point. Idempotent."""
        raise NotImplementedError  # pragma: no cover

    async def flush(self) -> None:
        """Store what the writer holds now, rather than within `FLUSH_INTERVAL`.

        Rarely needed: a step's chunks are stored before its result anyway. In a
        workflow body it does nothing (the run's worker stores each chunk it writes).
        """


class _WorkflowWriter(StreamWriter):
    """A writer in the workflow body: each write is a command, stored by the actor."""

    __slots__ = ("_instance",)

    def __init__(self, instance: WorkflowInstance, name: str) -> None:
        super().__init__(name)
        self._instance = instance

    async def write(self, value: Any) -> None:
        """Append ``value``: the run's actor stores it, once however often it replays."""
        self._instance.write_stream(self.name, self._encode(value))

    async def flush(self) -> None:
        """Nothing to do: the run's worker stores the body's chunks."""

    async def close(self) -> None:
        """End the stream (stored once, like a write)."""
        if not self._closed:
            self._closed = True
            self._instance.write_stream(self.name, None, close=True)


class _Engine(Protocol):
    """What a step writer uses of the Engine whose worker runs it."""

    @property
    def store(self) -> StreamStore: ...

    @property
    def clock(self) -> Clock: ...


class _Attempt:
    """The streams one step attempt writes: their writers, and its identity."""

    __slots__ = ("clock", "ref", "run_id", "store", "superseded", "writers")

    def __init__(self, meta: StepMetadata, engine: _Engine) -> None:
        self.store = engine.store
        self.clock = engine.clock
        self.run_id = meta.run_id
        step = meta.step_id.removeprefix(f"{meta.run_id}:")
        self.ref = StreamAttempt(step, meta.attempt, uuid.uuid4().hex)
        self.superseded = False
        """Whether what earlier executions of this call left was retracted yet."""
        self.writers: dict[str, _StepWriter] = {}


class _StepWriter(StreamWriter):
    """A writer in a step attempt: buffered, stored every `FLUSH_INTERVAL` at most."""

    __slots__ = ("_attempt", "_buffer", "_error", "_last", "_lock", "_timer")

    def __init__(self, attempt: _Attempt, name: str) -> None:
        super().__init__(name)
        self._attempt = attempt
        self._buffer: list[NewChunk] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._last = -FLUSH_INTERVAL
        self._error: BaseException | None = None

    async def write(self, value: Any) -> None:
        """Buffer ``value``; it is stored within `FLUSH_INTERVAL`, and before the step ends."""
        self.check()
        self._buffer.append(NewChunk(self._encode(value)))
        if len(self._buffer) >= FLUSH_SIZE:
            await self.flush()  # the writer waits: memory stays bounded
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last + FLUSH_INTERVAL - loop.time())
            self._timer = loop.call_later(delay, self._flush_soon)

    async def close(self) -> None:
        """End the stream once the step returns; a failed attempt's close is void too."""
        self.check()
        self._closed = True

    def check(self) -> None:
        """Raise the error a background store met, if any."""
        if self._error is not None:
            raise RuntimeError(f"storing chunks of stream {self.name!r} failed") from self._error

    def stop(self) -> None:
        """Store nothing more in the background."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def discard(self) -> None:
        """Drop what is buffered, once any store under way is done."""
        async with self._lock:
            self._buffer.clear()

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._background())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _background(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # the next write, or the step's end, raises it
            self._error = exc

    async def flush(self, *, final: bool = False) -> None:
        """Store the buffered chunks now (``final``: and the close, if it was closed)."""
        async with self._lock:
            if final:
                self.stop()
            chunks, self._buffer = self._buffer, []
            if final and self._closed:
                chunks.append(NewChunk(close=True))
            attempt = self._attempt
            if not chunks and (attempt.superseded or not final):
                return
            body = _body.get(attempt.run_id) if not attempt.superseded else None
            if body is not None:  # the body's earlier chunks first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(body), _BODY_WAIT)
            self._last = asyncio.get_running_loop().time()
            try:
                await attempt.store.append_chunks(
                    attempt.run_id,
                    self.name,
                    chunks,
                    attempt.clock.now(),
                    attempt=attempt.ref,
                    supersede=not attempt.superseded,
                )
            except BaseException:
                self._buffer[:0] = chunks
                raise
            attempt.superseded = True
            bell.ring()


_background: set[asyncio.Task[None]] = set()
"""Flushes and retractions under way, kept from the garbage collector."""

_body: dict[str, asyncio.Future[None]] = {}
"""Runs of this process whose workflow body wrote chunks not yet stored: set once they
are. A step the body calls after writing waits for them before storing its own first
chunks, so the stream keeps the order the run wrote in."""

_BODY_WAIT = 10.0
"""Seconds a step's first store waits at most for the body's chunks written before it."""


def body_writing(run_id: str) -> None:
    """The run's actor logged chunks of the workflow body (`body_stored` follows)."""
    if run_id not in _body:
        _body[run_id] = asyncio.get_running_loop().create_future()


def body_stored(run_id: str) -> None:
    """The run's actor appended the events holding the body's chunks."""
    future = _body.pop(run_id, None)
    if future is not None and not future.done():
        future.set_result(None)


_live: dict[StepMetadata, _Attempt] = {}
"""The step attempts running in this process that made a writer."""


def writing(meta: StepMetadata) -> bool:
    """Whether the step attempt ``meta`` made a writer (then call `finish_attempt`)."""
    return meta in _live


async def finish_attempt(meta: StepMetadata, error: BaseException | None) -> None:
    """The attempt ended: store what its writers hold, or retract what they wrote.

    Returned (``error`` None): every writer's buffer is stored, before the step's
    result is recorded; if that fails, the attempt's chunks are retracted and the
    error raised, which fails the attempt. Raised: its chunks are retracted (in the
    background when it was cancelled, which must not wait).
    """
    attempt = _live.pop(meta, None)
    if attempt is None:
        return
    if error is None:
        try:
            for writer in attempt.writers.values():
                writer.check()
                await writer.flush(final=True)
        except Exception as exc:
            await _retract(attempt)
            raise RuntimeError(f"storing the chunks of step {attempt.ref.step} failed") from exc
        return
    for writer in attempt.writers.values():
        writer.stop()
    if isinstance(error, asyncio.CancelledError):
        task = asyncio.get_running_loop().create_task(_retract(attempt))
        _background.add(task)
        task.add_done_callback(_background.discard)
    else:
        await _retract(attempt)


async def _retract(attempt: _Attempt) -> None:
    # Wait for flushes under way: a chunk stored after the retraction would stay open.
    for writer in attempt.writers.values():
        await writer.discard()
    try:
        if await attempt.store.retract_chunks(attempt.run_id, attempt.ref, attempt.clock.now()):
            bell.ring()
    except Exception as exc:  # a worker shutting down may have closed its store already
        # The call's next attempt retracts them as it begins (`retry_begins`).
        logger.warning(
            "could not retract the chunks of step %s yet (%s: %s); its next attempt will",
            attempt.ref.step,
            type(exc).__name__,
            exc,
        )


async def retry_begins(meta: StepMetadata) -> None:
    """Attempt ``meta`` (after the first) begins: retract what earlier ones left.

    A failed attempt retracts its own chunks as it fails, but one that died with its
    process, or whose retraction failed, could not: this is where they go, before the
    new attempt's result can commit chunks of its number (a crash may give two
    executions the same one). Only attempts after the first pay this store write.
    """
    step = meta.step_id.removeprefix(f"{meta.run_id}:")
    engine = cast("_Engine", _current.current())
    try:
        await engine.store.append_chunks(
            meta.run_id,
            "default",
            [],
            engine.clock.now(),
            attempt=StreamAttempt(step, meta.attempt, uuid.uuid4().hex),
            supersede=True,
        )
    except Exception as exc:  # the attempt's first store of chunks retracts them too
        logger.warning(
            "could not retract the chunks of step %s's earlier attempts (%s: %s)",
            step,
            type(exc).__name__,
            exc,
        )
        return
    bell.ring()


def get_writable(name: str = "default") -> StreamWriter:
    """A writer to the durable stream ``name`` of the current run.

    Call it in a workflow or in one of its steps (an ``async def`` one). Readers follow
    the stream live with ``run.stream(name)``, over HTTP at
    ``GET /runs/{id}/streams/{name}``, or with ``perdure stream RUN NAME``.

    Raises:
        ValueError: ``name`` is not a usable stream name.
        RuntimeError: outside a workflow and its steps.
    """
    check_stream_name(name)
    instance = current_instance()
    if instance is not None:
        return _WorkflowWriter(instance, name)
    current = step_context.get()
    if current is None:
        raise RuntimeError("get_writable() must be called inside a workflow or one of its steps")
    meta = current[0]
    attempt = _live.get(meta)
    if attempt is None:
        attempt = _live[meta] = _Attempt(meta, cast("_Engine", _current.current()))
    writer = attempt.writers.get(name)
    if writer is None:
        writer = attempt.writers[name] = _StepWriter(attempt, name)
    return writer
