"""Rules every store applies the same way: times, wake-up times, and error messages.

Kept in one place so that the memory store, which users test with, and the database
stores cannot drift apart on the details a test would notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from perdure._errors import (
    CancelRequestedError,
    HookConflictError,
    HookNotFoundError,
    LeaseLostError,
)

if TYPE_CHECKING:
    from perdure._records import JSON, HookRecord, RunStatus

__all__ = [
    "cancel_requested",
    "child_end",
    "earliest",
    "hook_conflict",
    "hook_not_found",
    "lease_lost",
    "same_hook",
    "task_lost",
    "utc",
]


def child_end(status: RunStatus, output: JSON, error: dict[str, JSON] | None) -> dict[str, JSON]:
    """The inbox payload that tells a parent its child ended (the parent logs it as is).

    ``{"status": ..., "output": ...}`` for a completed child, ``{"status": ...,
    "error": ...}`` otherwise (a cancel with no reason has no error). The database
    stores build the same object in SQL.
    """
    if error is not None:
        return {"status": status.value, "error": error}
    if status.value == "completed":
        return {"status": status.value, "output": output}
    return {"status": status.value}


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused rather than guessed at.

    Stores return timezone-aware UTC datetimes whatever zone they were given, so that a
    value read back compares and prints the same on every backend.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"perdure stores need timezone-aware datetimes, got {moment!r}")
    return moment.astimezone(UTC)


def earliest(*moments: datetime | None) -> datetime | None:
    """The earliest of the given times, ignoring None; None when all are None.

    A run that is woken (a resume, a cancel request) keeps an earlier ``wake_at`` it
    already had: both mean "claimable now", and the earlier one keeps its place in the
    oldest-first claim order.
    """
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def lease_lost(worker_id: str, run_id: str, owner: str | None, *, exists: bool) -> LeaseLostError:
    """The error for a write by a worker that does not hold the run."""
    if not exists:
        held = "no such run exists"
    elif owner is None:
        held = "nobody holds it"
    else:
        held = f"it is held by worker {owner!r}"
    return LeaseLostError(f"worker {worker_id!r} does not hold run {run_id!r}: {held}")


def cancel_requested(run_id: str) -> CancelRequestedError:
    """The error for an append, other than the run's cancellation, once a cancel is stored."""
    return CancelRequestedError(
        f"run {run_id!r} has a cancel request: only its cancellation may be logged"
    )


def task_lost(
    worker_id: str, task_id: int, owner: str | None, status: str | None
) -> LeaseLostError:
    """The error for finishing a step task the worker does not hold (``status`` None: gone)."""
    if status is None:
        held = "no such task exists (the run ended, or its outcome was logged)"
    elif status != "claimed":
        held = f"it is {status}"
    else:
        held = f"it is held by worker {owner!r}"
    return LeaseLostError(f"worker {worker_id!r} does not hold step task {task_id}: {held}")


def hook_conflict(token: str, holder_run_id: str) -> HookConflictError:
    """The error for creating a hook whose token a live hook already holds."""
    return HookConflictError(
        f"hook token {token!r} is already held by a live hook of run {holder_run_id!r}",
        token=token,
        holder_run_id=holder_run_id,
    )


def same_hook(hook: HookRecord, created_by: tuple[str, str] | None) -> bool:
    """Whether ``hook`` is the one ``created_by`` (run id, correlation id) names, if any."""
    return created_by is None or created_by == (hook.run_id, hook.correlation_id)


def hook_not_found(
    token: str, *, name: str | None = None, actual: str | None = None
) -> HookNotFoundError:
    """The error for resuming a token no live hook holds, or a hook of another name."""
    if actual is not None:
        return HookNotFoundError(
            f"the live hook holding token {token!r} is named {actual!r}, not {name!r}"
        )
    return HookNotFoundError(f"no live hook holds token {token!r}")
