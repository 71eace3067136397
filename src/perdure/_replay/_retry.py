"""Retry policy and backoff math for steps."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from perdure._errors import FatalError, RetryableError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a step is retried.

    A step makes at most ``max_retries + 1`` attempts. The delay before attempt ``n+1``
    is ``initial_delay * multiplier ** (n - 1)``, capped at ``max_delay``, with "full
    jitter" over its upper half: spreading retries keeps a fleet of runs that failed
    together from hammering a recovering service together.
    """

    max_retries: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0 seconds")
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier must be >= 1, got {self.multiplier}")

    @property
    def max_attempts(self) -> int:
        """The number of attempts, the first included."""
        return self.max_retries + 1

    def delay_after(
        self,
        attempt: int,
        error: BaseException,
        rng: random.Random | None = None,
        *,
        now: datetime | None = None,
    ) -> float | None:
        """Seconds to wait after ``attempt`` failed with ``error``; None means give up.

        A `RetryableError` sets the delay itself: its ``retry_after``, or the time from
        ``now`` (when the attempt failed, on the engine's clock; the system clock if
        not given) until its ``retry_at``.
        """
        if isinstance(error, FatalError) or attempt >= self.max_attempts:
            return None
        if isinstance(error, RetryableError):
            if error.retry_at is not None:
                failed_at = now if now is not None else datetime.now(UTC)
                return max(0.0, (error.retry_at - failed_at).total_seconds())
            if error.retry_after is not None:
                return error.retry_after
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
