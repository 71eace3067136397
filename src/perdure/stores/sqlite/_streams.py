"""The SQLite store's durable streams: `StreamStore` on the ``stream_chunks`` table.

Every write runs on the store's one writer connection, so numbering a stream's rows
from its highest index is safe; other processes see each commit through
``data_version``, which is how their readers wake.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from perdure._chunks import ChunkRow, NewChunk, check_stream_name
from perdure.stores._memory_streams import chunk_state
from perdure.stores.sqlite._rows import dumps, from_us, loads, to_us

if TYPE_CHECKING:
    import sqlite3
    from datetime import datetime

    from perdure._chunks import StreamAttempt
    from perdure._records import JSON
    from perdure.stores._index import StreamChunkAdded

__all__ = ["append_chunks", "body_chunk", "read_chunks", "retract_chunks", "stream_lengths"]

_KEYS_PER_QUERY = 500
"""Keys looked up per statement: a replay may write back thousands of the body's chunks."""


def _length(conn: sqlite3.Connection, run_id: str, stream: str) -> int:
    row = conn.execute(
        "SELECT max(idx) FROM stream_chunks WHERE run_id = ? AND stream = ?", (run_id, stream)
    ).fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def append_chunks(
    conn: sqlite3.Connection,
    run_id: str,
    stream: str,
    chunks: list[NewChunk],
    encoded: list[str | None],
    now: datetime,
    attempt: StreamAttempt | None,
    supersede: bool,
) -> int:
    """Append rows, skipping keys held already; the stream's new length."""
    at = to_us(now)
    if supersede and attempt is not None:
        _retract(conn, run_id, attempt, at, others=True)
    keys = [chunk.key for chunk in chunks if chunk.key is not None]
    held: set[str] = set()
    for first in range(0, len(keys), _KEYS_PER_QUERY):  # within SQLite's variable limit
        some = keys[first : first + _KEYS_PER_QUERY]
        held.update(
            row[0]
            for row in conn.execute(
                "SELECT key FROM stream_chunks WHERE run_id = ? AND stream = ? "  # noqa: S608
                f"AND key IN ({','.join('?' * len(some))})",
                (run_id, stream, *some),
            )
        )
    index = _length(conn, run_id, stream)
    step, number, attempt_key = (
        (attempt.step, attempt.attempt, attempt.key) if attempt is not None else (None, None, None)
    )
    rows = []
    for chunk, text in zip(chunks, encoded, strict=True):
        if chunk.key is not None:
            if chunk.key in held:
                continue
            held.add(chunk.key)
        kind = "close" if chunk.close else "chunk"
        rows.append((run_id, stream, index, kind, text, step, number, attempt_key, chunk.key, at))
        index += 1
    conn.executemany(
        "INSERT INTO stream_chunks (run_id, stream, idx, kind, value, step, attempt, "
        "attempt_key, key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return index


def body_chunk(conn: sqlite3.Connection, run_id: str, change: StreamChunkAdded, at: int) -> None:
    """A ``stream_written`` event's chunk, in the transaction of the append that logs it."""
    chunk = NewChunk(change.value, key=change.key, close=change.close)
    encoded = None if change.close else dumps(change.value)
    append_chunks(
        conn, run_id, change.stream, [chunk], [encoded], from_us(at), None, supersede=False
    )


def retract_chunks(
    conn: sqlite3.Connection, run_id: str, attempt: StreamAttempt, now: datetime
) -> int:
    """Retract that execution's chunks, with a retraction row per stream; how many."""
    return _retract(conn, run_id, attempt, to_us(now), others=False)


def _retract(
    conn: sqlite3.Connection, run_id: str, attempt: StreamAttempt, at: int, *, others: bool
) -> int:
    test = "attempt_key IS NOT ?" if others else "attempt_key IS ?"
    found = conn.execute(
        "SELECT stream, idx, attempt FROM stream_chunks WHERE run_id = ? AND step = ? "  # noqa: S608
        f"AND kind = 'chunk' AND retracted = 0 AND {test} ORDER BY stream, idx",
        (run_id, attempt.step, attempt.key),
    ).fetchall()
    if not found:
        return 0
    gone: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for stream, index, number in found:
        gone[(stream, number)].append(index)
    conn.executemany(
        "UPDATE stream_chunks SET retracted = 1 WHERE run_id = ? AND stream = ? AND idx = ?",
        [(run_id, stream, index) for stream, index, _ in found],
    )
    for (stream, number), indices in sorted(gone.items(), key=lambda item: item[0][0]):
        value: JSON = {"step": attempt.step, "attempt": number, "indices": indices}
        conn.execute(
            "INSERT INTO stream_chunks (run_id, stream, idx, kind, value, step, attempt, "
            "created_at) VALUES (?, ?, ?, 'retraction', ?, ?, ?, ?)",
            (run_id, stream, _length(conn, run_id, stream), dumps(value), attempt.step, number, at),
        )
    return len(found)


def read_chunks(
    conn: sqlite3.Connection, run_id: str, stream: str, start: int, limit: int
) -> list[ChunkRow]:
    """Up to ``limit`` rows from index ``start`` on, each with its state as it stands."""
    found = conn.execute(
        "SELECT c.idx, c.kind, c.value, c.step, c.attempt, c.retracted, c.created_at, "
        "s.status, s.attempt FROM stream_chunks c LEFT JOIN steps s "
        "ON s.run_id = c.run_id AND s.correlation_id = c.step "
        "WHERE c.run_id = ? AND c.stream = ? AND c.idx >= ? ORDER BY c.idx LIMIT ?",
        (run_id, check_stream_name(stream), max(start, 0), max(limit, 0)),
    ).fetchall()
    return [_row(row) for row in found]


def _row(row: tuple[Any, ...]) -> ChunkRow:
    index, kind, value, step, attempt, retracted, created_at, status, done = row
    state = chunk_state(
        kind, bool(retracted), step, attempt, (status, done) if status is not None else None
    )
    return ChunkRow(index, kind, loads(value), step, attempt, state, from_us(created_at))


def stream_lengths(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """The run's streams and their lengths, by name."""
    return {
        stream: int(top) + 1
        for stream, top in conn.execute(
            "SELECT stream, max(idx) FROM stream_chunks WHERE run_id = ? GROUP BY stream "
            "ORDER BY stream",
            (run_id,),
        )
    }
