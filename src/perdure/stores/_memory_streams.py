"""The durable streams of `MemoryStore`: the reference `StreamStore`, in lists.

A mixin, like the schedules' (`_memory_schedules`): `MemoryStore` inherits it and gives
it its step rows (`_steps`) and its change notification (`_changed`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perdure._chunks import ChunkRow, NewChunk, check_stream_name
from perdure.stores._common import utc

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._chunks import ChunkKind, ChunkState, StreamAttempt
    from perdure._records import JSON, StepRecord
    from perdure.stores._index import StreamChunkAdded

__all__ = ["MemoryStreams", "chunk_state"]


def chunk_state(
    kind: str, retracted: bool, step: str | None, attempt: int | None, row: tuple[str, int] | None
) -> ChunkState:
    """A row's state, from the step row (status, attempt) of its step call, if any.

    The rule every store applies (in SQL for the databases): see `perdure._chunks`.
    """
    if retracted:
        return "retracted"
    if kind != "chunk" or step is None:
        return "committed"
    if row is not None and row[0] == "completed" and row[1] == attempt:
        return "committed"
    return "open"


@dataclass(slots=True)
class _Row:
    index: int
    kind: ChunkKind
    value: JSON
    step: str | None
    attempt: int | None
    attempt_key: str | None
    key: str | None
    retracted: bool
    created_at: datetime


class MemoryStreams:
    """`StreamStore` on lists of rows; each call is atomic on the event loop."""

    _steps: dict[str, dict[str, StepRecord]]
    _streams: dict[tuple[str, str], list[_Row]]

    def _changed(self) -> None:  # pragma: no cover - MemoryStore's own is used
        raise NotImplementedError

    async def append_chunks(
        self,
        run_id: str,
        stream: str,
        chunks: list[NewChunk],
        now: datetime,
        *,
        attempt: StreamAttempt | None = None,
        supersede: bool = False,
    ) -> int:
        """Append rows (skipping keys already held); the stream's new length."""
        check_stream_name(stream)
        now = utc(now)
        values = [json.loads(json.dumps(chunk.value)) for chunk in chunks]  # TypeError first
        if supersede and attempt is not None:
            self._retract(run_id, attempt, now, others=True)
        length = self._add_chunks(run_id, stream, chunks, values, now, attempt)
        self._changed()
        return length

    def _add_body_chunk(self, run_id: str, change: StreamChunkAdded, now: datetime) -> None:
        """A ``stream_written`` event's chunk, in the append that logs it."""
        chunk = NewChunk(change.value, key=change.key, close=change.close)
        value = json.loads(json.dumps(change.value))
        self._add_chunks(run_id, change.stream, [chunk], [value], utc(now), None)

    def _add_chunks(
        self,
        run_id: str,
        stream: str,
        chunks: list[NewChunk],
        values: list[JSON],
        now: datetime,
        attempt: StreamAttempt | None,
    ) -> int:
        if not chunks:  # no list for a stream nobody wrote to
            return len(self._streams.get((run_id, stream), []))
        rows = self._streams.setdefault((run_id, stream), [])
        keys = {row.key for row in rows if row.key is not None}
        for chunk, value in zip(chunks, values, strict=True):
            if chunk.key is not None:
                if chunk.key in keys:
                    continue
                keys.add(chunk.key)
            rows.append(
                _Row(
                    len(rows),
                    "close" if chunk.close else "chunk",
                    None if chunk.close else value,
                    attempt.step if attempt is not None else None,
                    attempt.attempt if attempt is not None else None,
                    attempt.key if attempt is not None else None,
                    chunk.key,
                    retracted=False,
                    created_at=now,
                )
            )
        return len(rows)

    async def retract_chunks(self, run_id: str, attempt: StreamAttempt, now: datetime) -> int:
        """Retract that execution's chunks; how many."""
        count = self._retract(run_id, attempt, utc(now), others=False)
        if count:
            self._changed()
        return count

    async def read_chunks(
        self, run_id: str, stream: str, *, start: int = 0, limit: int = 1000
    ) -> list[ChunkRow]:
        """Up to ``limit`` rows from ``start`` on, with their states as they stand."""
        steps = self._steps.get(run_id, {})
        out = []
        for row in self._streams.get((run_id, stream), [])[max(start, 0) :][: max(limit, 0)]:
            record = steps.get(row.step) if row.step is not None else None
            state = chunk_state(
                row.kind,
                row.retracted,
                row.step,
                row.attempt,
                (record.status, record.attempt) if record is not None else None,
            )
            out.append(
                ChunkRow(
                    row.index, row.kind, row.value, row.step, row.attempt, state, row.created_at
                )
            )
        return out

    async def stream_lengths(self, run_id: str) -> dict[str, int]:
        """The run's streams and their lengths, by name."""
        return {
            name: len(rows)
            for (owner, name), rows in sorted(self._streams.items())
            if owner == run_id and rows
        }

    def _retract(self, run_id: str, attempt: StreamAttempt, now: datetime, *, others: bool) -> int:
        count = 0
        for (owner, _), rows in sorted(self._streams.items()):
            if owner != run_id:
                continue
            gone: dict[int | None, list[int]] = {}
            for row in rows:
                if row.kind != "chunk" or row.retracted or row.step != attempt.step:
                    continue
                if (row.attempt_key != attempt.key) if others else (row.attempt_key == attempt.key):
                    row.retracted = True
                    gone.setdefault(row.attempt, []).append(row.index)
            for number, indices in gone.items():
                value: JSON = {"step": attempt.step, "attempt": number, "indices": list(indices)}
                rows.append(
                    _Row(
                        len(rows),
                        "retraction",
                        value,
                        attempt.step,
                        number,
                        None,
                        None,
                        retracted=False,
                        created_at=now,
                    )
                )
                count += len(indices)
        return count
