"""The PostgreSQL store's durable streams: `StreamStore` on ``streams`` and ``stream_chunks``.

Writers of one stream may sit on many connections and machines: each write first takes
the row lock of the stream's ``streams`` row (an upsert), so they number their rows one
after the other. Every write notifies ``perdure_changes`` in its transaction, which is
how readers in other processes wake as soon as it commits.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from perdure._chunks import ChunkRow
from perdure.stores._common import utc
from perdure.stores._memory_streams import chunk_state
from perdure.stores.postgres._rows import dumps, loads

if TYPE_CHECKING:
    from datetime import datetime

    from asyncpg import Connection, Record
    from asyncpg.pool import PoolConnectionProxy

    from perdure._chunks import NewChunk, StreamAttempt
    from perdure._records import JSON

    Conn = Connection[Record] | PoolConnectionProxy[Record]

__all__ = ["append_chunks", "read_chunks", "retract_chunks", "stream_lengths"]

_LOCK = (
    "INSERT INTO streams (run_id, name, length) VALUES ($1, $2, 0) "
    "ON CONFLICT (run_id, name) DO UPDATE SET length = streams.length RETURNING length"
)
_INSERT = (
    "INSERT INTO stream_chunks (run_id, stream, idx, kind, value, step, attempt, attempt_key, "
    "key, created_at) SELECT $1, $2, t.idx, t.kind, t.value::json, $3, $4, $5, t.key, $6 "
    "FROM unnest($7::bigint[], $8::text[], $9::text[], $10::text[]) AS t(idx, kind, value, key)"
)
_NOTIFY = "SELECT pg_notify('perdure_changes', 'stream')"


async def append_chunks(
    conn: Conn,
    run_id: str,
    stream: str,
    chunks: list[NewChunk],
    encoded: list[str | None],
    now: datetime,
    attempt: StreamAttempt | None,
    supersede: bool,
) -> int:
    """Append rows, skipping keys held already; the stream's new length."""
    at = utc(now)
    async with conn.transaction():
        if supersede and attempt is not None:
            await _retract(conn, run_id, attempt, at, others=True)
        if not chunks:  # no row for a stream nobody wrote to
            length = await conn.fetchval(
                "SELECT length FROM streams WHERE run_id = $1 AND name = $2", run_id, stream
            )
            return int(length or 0)
        index: int = await conn.fetchval(_LOCK, run_id, stream)
        keys = [chunk.key for chunk in chunks if chunk.key is not None]
        held: set[str] = set()
        if keys:
            held = {
                row["key"]
                for row in await conn.fetch(
                    "SELECT key FROM stream_chunks WHERE run_id = $1 AND stream = $2 "
                    "AND key = ANY($3::text[])",
                    run_id,
                    stream,
                    keys,
                )
            }
        indices: list[int] = []
        kinds: list[str] = []
        values: list[str | None] = []
        row_keys: list[str | None] = []
        for chunk, text in zip(chunks, encoded, strict=True):
            if chunk.key is not None:
                if chunk.key in held:
                    continue
                held.add(chunk.key)
            indices.append(index)
            kinds.append("close" if chunk.close else "chunk")
            values.append(text)
            row_keys.append(chunk.key)
            index += 1
        step, number, attempt_key = (
            (attempt.step, attempt.attempt, attempt.key)
            if attempt is not None
            else (None, None, None)
        )
        if indices:
            await conn.execute(
                _INSERT, run_id, stream, step, number, attempt_key, at,
                indices, kinds, values, row_keys,
            )  # fmt: skip
            await conn.execute(
                "UPDATE streams SET length = $3 WHERE run_id = $1 AND name = $2",
                run_id,
                stream,
                index,
            )
            await conn.execute(_NOTIFY)
        return index


async def retract_chunks(conn: Conn, run_id: str, attempt: StreamAttempt, now: datetime) -> int:
    """Retract that execution's chunks, with a retraction row per stream; how many."""
    async with conn.transaction():
        return await _retract(conn, run_id, attempt, utc(now), others=False)


async def _retract(
    conn: Conn, run_id: str, attempt: StreamAttempt, at: datetime, *, others: bool
) -> int:
    test = "attempt_key IS DISTINCT FROM $3" if others else "attempt_key = $3"
    found = await conn.fetch(
        "UPDATE stream_chunks SET retracted = true WHERE run_id = $1 AND step = $2 "  # noqa: S608
        f"AND kind = 'chunk' AND NOT retracted AND {test} RETURNING stream, idx, attempt",
        run_id,
        attempt.step,
        attempt.key,
    )
    if not found:
        return 0
    gone: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for row in sorted(found, key=lambda row: (row["stream"], row["idx"])):
        gone[(row["stream"], row["attempt"])].append(row["idx"])
    for (stream, number), indices in sorted(gone.items(), key=lambda item: item[0][0]):
        index: int = await conn.fetchval(_LOCK, run_id, stream)
        value: JSON = {"step": attempt.step, "attempt": number, "indices": indices}
        await conn.execute(
            "INSERT INTO stream_chunks (run_id, stream, idx, kind, value, step, attempt, "
            "created_at) VALUES ($1, $2, $3, 'retraction', $4::json, $5, $6, $7)",
            run_id, stream, index, dumps(value), attempt.step, number, at,
        )  # fmt: skip
        await conn.execute(
            "UPDATE streams SET length = $3 WHERE run_id = $1 AND name = $2",
            run_id,
            stream,
            index + 1,
        )
    await conn.execute(_NOTIFY)
    return len(found)


async def read_chunks(
    conn: Conn, run_id: str, stream: str, start: int, limit: int
) -> list[ChunkRow]:
    """Up to ``limit`` rows from index ``start`` on, each with its state as it stands."""
    found = await conn.fetch(
        "SELECT c.idx, c.kind, c.value, c.step, c.attempt, c.retracted, c.created_at, "
        "s.status, s.attempt AS done FROM stream_chunks c LEFT JOIN steps s "
        "ON s.run_id = c.run_id AND s.correlation_id = c.step "
        "WHERE c.run_id = $1 AND c.stream = $2 AND c.idx >= $3 ORDER BY c.idx LIMIT $4",
        run_id,
        stream,
        max(start, 0),
        max(limit, 0),
    )
    return [_row(row) for row in found]


def _row(row: Any) -> ChunkRow:
    status = row["status"]
    state = chunk_state(
        row["kind"],
        row["retracted"],
        row["step"],
        row["attempt"],
        (status, row["done"]) if status is not None else None,
    )
    return ChunkRow(
        row["idx"],
        row["kind"],
        loads(row["value"]),
        row["step"],
        row["attempt"],
        state,
        row["created_at"],
    )


async def stream_lengths(conn: Conn, run_id: str) -> dict[str, int]:
    """The run's streams and their lengths, by name."""
    return {
        row["name"]: row["length"]
        for row in await conn.fetch(
            "SELECT name, length FROM streams WHERE run_id = $1 AND length > 0 ORDER BY name",
            run_id,
        )
    }
