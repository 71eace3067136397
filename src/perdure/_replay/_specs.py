"""What the decorators know about a workflow or a step.

The commands a workflow emits, and the completions it is given, are in `_commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from perdure._flow import Limit, Rate
from perdure._replay._retry import RetryPolicy
from perdure._serde import CallCodec

__all__ = ["StepSpec", "WorkflowSpec"]


@dataclass(frozen=True, slots=True, eq=False)
class StepSpec:
    """A step as `@step` made it."""

    fn: Callable[..., Any]
    name: str
    codec: CallCodec
    retry: RetryPolicy
    timeout: float | None
    queue: str | None
    is_async: bool
    concurrency: int | None = None
    """Attempts of this step at once across all workers (`perdure._flow`), or None."""
    rate: Rate | None = None
    """Attempts of this step started per period across all workers, or None."""


@dataclass(frozen=True, slots=True, eq=False)
class WorkflowSpec:
    """A workflow as `@workflow` made it."""

    fn: Callable[..., Any]
    name: str
    codec: CallCodec
    version: str
    block_on: tuple[type[BaseException], ...] = (
        NameError,
        AttributeError,
        ImportError,
        TypeError,
    )
    """The errors of the workflow's own code that block its run rather than fail it:
    programming errors, which a deploy of the fixed code mends (a step's error that
    surfaces in the workflow, and `FatalError`, fail it whatever their type)."""
    concurrency: Limit | None = None
    """At most ``n`` runs per key make progress at once across all workers, or None."""
    timeout: timedelta | None = None
    """How long a run may take before it is cancelled (``@workflow(timeout=...)``), or
    None; ``engine.start(..., timeout=...)`` overrides it (`perdure._deadlines`)."""
