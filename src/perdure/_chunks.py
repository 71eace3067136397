"""The plain values a durable stream's rows are made of, shared by stores and readers.

A stream is an ordered sequence of rows per (run, name), numbered from 0. Three kinds:

- ``chunk``: a value written with ``writer.write``. Written by the workflow body, it
  carries a ``key`` (its place in the workflow's deterministic sequence of writes), so
  a replay that writes it again stores nothing new. Written by a step attempt, it
  carries the attempt (`StreamAttempt`).
- ``retraction``: the chunks of a step attempt that failed (or was superseded by a
  later attempt of the same call) are retracted; the row's value names the step, the
  attempt and the indices. Retracted chunks keep their indices: what a live reader was
  given stays numbered the same for a reader that resumes.
- ``close``: ``writer.close()``; readers stop there.

A chunk's ``state`` is derived when it is read: ``retracted`` once retracted;
``committed`` when the workflow body wrote it, or when its step's row shows the call
completed by that attempt; ``open`` while its attempt's fate is unknown. So a step's
chunks become committed in the very transaction that logs the step's result, and no
crash can leave them committed without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._records import JSON

__all__ = ["ChunkKind", "ChunkRow", "ChunkState", "NewChunk", "StreamAttempt", "check_stream_name"]

ChunkKind = Literal["chunk", "retraction", "close"]
ChunkState = Literal["committed", "open", "retracted"]

MAX_NAME = 200
"""The longest stream name, in characters."""


def check_stream_name(name: object) -> str:
    """``name`` if it can name a stream: a non-empty string without NUL, at most 200 long.

    Raises:
        ValueError: it cannot (the message says why).
    """
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > MAX_NAME:
        raise ValueError(
            f"a stream name must be a non-empty string of at most {MAX_NAME} characters "
            f"without NUL, got {name!r}"
        )
    return name


@dataclass(frozen=True, slots=True)
class StreamAttempt:
    """The step attempt that writes chunks.

    ``step`` is its correlation id (``draft#1``) and ``attempt`` its number. ``key``
    tells this execution of the attempt from any other: after a crash a step may run
    again under the same attempt number, and the chunks of the one that died must be
    told from the new one's.
    """

    step: str
    attempt: int
    key: str


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A row to append: a value (``close``: the stream's end), with an idempotency key.

    A row whose ``key`` the stream already holds is not stored again.
    """

    value: JSON = None
    key: str | None = None
    close: bool = False


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One row of a stream as read back."""

    index: int
    kind: ChunkKind
    value: JSON
    step: str | None
    attempt: int | None
    state: ChunkState
    created_at: datetime
