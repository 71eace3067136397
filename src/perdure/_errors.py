"""The exceptions users catch, and the ones perdure uses to steer steps.

The hierarchy::

    Exception
    ├── PerdureError                  base of everything perdure raises on its own behalf
    │   ├── WorkflowFailed            run.result() of a run that ended `failed`; in a
    │   │                             workflow, a child run that failed (its run_id)
    │   ├── WorkflowCancelled         run.result() of a run that ended `cancelled`; in a
    │   │                             workflow, a child run that was cancelled
    │   ├── NonDeterminismError       the workflow's code no longer matches its run's log
    │   ├── LeaseLostError            a worker tried to write to a run it no longer holds
    │   ├── CancelRequestedError      a worker tried to move on a run whose cancel is stored
    │   ├── RunNotFoundError          (also LookupError) no run has that id
    │   ├── HookNotFoundError         (also LookupError) no live hook holds that token
    │   ├── HookConflictError         a live hook already holds the token being created
    │   ├── HookPayloadError          (also TypeError) a payload does not decode to its hook's type
    │   ├── RowFormatError            (also ValueError) a stored row this release cannot read
    │   ├── StoreError                the database failed a call in a way no retry mends, or
    │   │                             a write it may have stored (`maybe_stored` says which)
    │   └── StepError                 a step's failure whose original type cannot be rebuilt
    ├── FatalError                    raised by a step: fail at once, never retry
    └── RetryableError                raised by a step: retry, optionally after `retry_after`

`CancelRequestedError`, like `LeaseLostError`, is what a store tells a worker; users
never see it, and it is not part of ``perdure``'s exports.

`StoreError` is the only way a database failure reaches a caller of the public API:
never the driver's own exception (asyncpg's, sqlite3's, an `OSError`). A failure
another try can mend (a restart, a dropped connection, a lock) is retried instead,
within the caller's own deadline; see `perdure._store_calls`.

`FatalError` and `RetryableError` are not `PerdureError`s: user code raises them, and
they mean "this step's failure is of this kind", not "perdure went wrong".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from perdure._durations import Duration, parse_duration

__all__ = [
    "CancelRequestedError",
    "FatalError",
    "HookConflictError",
    "HookNotFoundError",
    "HookPayloadError",
    "LeaseLostError",
    "NonDeterminismError",
    "PerdureError",
    "RetryableError",
    "RowFormatError",
    "RunNotFoundError",
    "StepError",
    "StoreError",
    "WorkflowCancelled",
    "WorkflowFailed",
]


class PerdureError(Exception):
    """Base class of the errors perdure raises itself."""


class FatalError(Exception):
    """Raised inside a step to fail it at once, without retries.

    Use it for errors that another attempt cannot fix: bad input, a 4xx from an API.
    """


class RetryableError(Exception):
    """Raised inside a step to ask for another attempt, optionally after a set delay.

    Args:
        message: what went wrong.
        retry_after: when to try again. A duration in any form `perdure.sleep` takes
            (seconds, a timedelta, or text such as ``"5s"`` or ``"1h30m"``), counted
            from when the attempt failed; or an aware datetime, the moment to try again
            (on the engine's clock; one already past means at once). By default the
            step's exponential backoff decides. Attempts still count against the
            step's ``max_retries``.

    Attributes:
        retry_after: the delay in seconds, when a duration was given; else None.
        retry_at: the moment, in UTC, when a datetime was given; else None.

    Raises:
        TypeError: ``retry_after`` is none of those forms.
        ValueError: ``retry_after`` is a negative duration, text that is not one, or
            a naive datetime.
    """

    def __init__(
        self, message: str = "", *, retry_after: Duration | datetime | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after: float | None = None
        self.retry_at: datetime | None = None
        if retry_after is None:
            return
        if isinstance(retry_after, datetime):
            if retry_after.utcoffset() is None:
                raise ValueError(f"retry_after needs an aware datetime, got naive {retry_after}")
            self.retry_at = retry_after.astimezone(UTC)
        elif isinstance(retry_after, bool) or not isinstance(
            retry_after, str | int | float | timedelta
        ):
            kind = type(retry_after).__name__
            raise TypeError(
                "retry_after must be seconds, a timedelta, text like '5s' or a datetime, "
                f"got {kind}"
            )
        else:
            self.retry_after = parse_duration(retry_after, what="retry_after").total_seconds()


class _RemoteError(PerdureError):
    """An error that happened elsewhere (another process, an earlier life of the run).

    It keeps the original error's qualified type name, message and formatted traceback,
    because the original object itself is never stored: perdure does not pickle.
    """

    def __init__(self, message: str, *, type: str, traceback: str | None = None) -> None:  # noqa: A002
        super().__init__(message)
        self.type = type
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class WorkflowFailed(_RemoteError):
    """The run ended `failed`: the workflow raised, or a step's failure was not caught.

    Raised by ``run.result()``, and inside a workflow where it awaits a child run that
    failed (`perdure.start_child`, or a call of a workflow): then ``run_id`` is the
    child's, and the parent may catch it.

    Attributes:
        run_id: the run that failed.
        type: the qualified name of the original exception type (``"builtins.ValueError"``).
        message: the original exception's message.
        traceback: the original traceback, formatted as text.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        type: str,  # noqa: A002
        traceback: str | None = None,
    ) -> None:
        super().__init__(message, type=type, traceback=traceback)
        self.run_id = run_id

    def __str__(self) -> str:
        return f"run {self.run_id} failed: {self.type}: {self.message}"


class WorkflowCancelled(PerdureError):
    """The run ended `cancelled`.

    Attributes:
        run_id: the run.
        reason: why, when not by a caller ("deadline of 1h passed"), else None.
    """

    def __init__(self, run_id: str, reason: str | None = None) -> None:
        super().__init__(f"run {run_id} was cancelled" + (f": {reason}" if reason else ""))
        self.run_id = run_id
        self.reason = reason


class StepError(_RemoteError):
    """A step's final failure, when its original exception type cannot be rebuilt.

    perdure re-raises a step's failure as its original type whenever that type can be
    imported and built from its message; otherwise as this, with the type's name kept.
    """


class NonDeterminismError(PerdureError):
    """The workflow asked for something its run's log does not hold at that place.

    This happens when a workflow's code changed while a run of it was in flight, or
    when the workflow depends on something other than its inputs and durable calls
    (the wall clock, `random`, a global). The message names the call, its position
    and what the log holds there.
    """


class LeaseLostError(PerdureError):
    """A worker wrote to a run that another worker has since taken over.

    The write was refused; the run continues on its new owner.
    """


class CancelRequestedError(PerdureError):
    """A worker tried to log something other than the end of a run whose cancel is stored.

    The write was refused: once ``cancel()`` has returned, the run's only next entry is
    ``run_cancelled``. The worker cancels the workflow instead of moving it on.
    """


class RunNotFoundError(PerdureError, LookupError):
    """No run has the given id."""


class HookNotFoundError(PerdureError, LookupError):
    """No live hook holds the given token (it never existed, or its run has ended)."""


class StoreError(PerdureError):
    """The database failed a call, and trying again here could not mend it.

    Raised for a failure no retry mends (a disk I/O error, a corrupt file, a refused
    permission), or for a write whose connection broke before the database answered
    when sending it twice could do harm (a hook's payload): it may have been stored.
    Failures that another try mends (a server restart, a dropped connection, a locked
    file) are retried instead, for reads and for writes that cannot be stored twice.
    The driver's exception is the ``__cause__``.

    Attributes:
        maybe_stored: whether the write may have been stored. False: nothing was
            written (and for every read), so sending it again is safe. True: it may
            or may not have been; read back (the run, the hook's events) before
            sending it again.
    """

    def __init__(self, message: str, *, maybe_stored: bool) -> None:
        super().__init__(message)
        self.maybe_stored = maybe_stored


class HookConflictError(PerdureError):
    """A hook was created with a token that another live hook already holds.

    Attributes:
        token: the token asked for, when known.
        holder_run_id: the run whose live hook holds it, when known.
    """

    def __init__(
        self, message: str, *, token: str | None = None, holder_run_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.token = token
        self.holder_run_id = holder_run_id


class HookPayloadError(PerdureError, TypeError):
    """A payload a hook received does not decode to the hook's type.

    Raised inside the workflow, where it awaits the hook or iterates it: an error the
    workflow may catch and go on from (uncaught, it fails the run as any error does).
    Every resume is checked against the schema stored with the hook, so this means a
    payload stored without that check (for a hook created by an older perdure) or a
    type a deploy changed since the hook was created. The payload is consumed; an
    iterated hook stays live for the next one. A `TypeError` too, as the decoding
    error was before.

    Attributes:
        token: the hook's token.
    """

    def __init__(self, message: str, *, token: str) -> None:
        super().__init__(message)
        self.token = token


class RowFormatError(PerdureError, ValueError):
    """A row of the database holds what this release cannot read.

    A row perdure wrote never raises this: it means a row changed by hand, a damaged
    one, or one a newer release wrote (a status this one does not know). The stores
    read such a row anyway, with what is unreadable set aside (``malformed`` on the
    record: `perdure.RunRecord`, `StepTask`, `InboxItem`), so that one bad row never
    fails a listing, a claim or a worker's pass; this error is raised where a caller
    needs what cannot be read: `Engine.get_run`, a run's result. A worker sets the run
    that owns such a row aside, with this error naming the row and column. (The events
    of a run's log have their own, `perdure._log.LogFormatError`.)

    Attributes:
        table: the table (``runs``, ``step_tasks``, ``hook_inbox``).
        key: the row's key (a run id, a task or inbox item id).
        problems: each column that cannot be read, with why.
    """

    def __init__(self, table: str, key: object, problems: dict[str, str]) -> None:
        what = "; ".join(f"{column} {problem}" for column, problem in problems.items())
        super().__init__(f"{table} row {key!r} cannot be read: {what}")
        self.table = table
        self.key = key
        self.problems = problems
