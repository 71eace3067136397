"""Which Engine the calls that take none use: `perdure.start`, `Hook.resume`, `Webhook.url`.

It is the Engine whose worker runs the calling workflow, else the Engine entered most
recently and not yet left. The bookkeeping lives here, below both `perdure._engine`
and `perdure._hooks`: the Engine uses hook definitions (it validates the payloads it
stores), and hooks find the current Engine, so neither of those two modules may import
the other.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

    from perdure._records import HookRecord

__all__ = ["CurrentEngine", "current", "entered", "latest", "left", "public_url", "serving"]


class CurrentEngine(Protocol):
    """What the code that finds its Engine here uses of it (`perdure.Engine` is one)."""

    public_url: str | None

    async def resume_hook(
        self, token: str, payload: Any, *, name: str | None = None
    ) -> HookRecord: ...


_entered: list[CurrentEngine] = []
"""The Engines entered and not yet left, the latest last."""

_serving: contextvars.ContextVar[CurrentEngine | None] = contextvars.ContextVar(
    "perdure_serving_engine", default=None
)
"""The Engine whose worker runs the current code (its tasks inherit it)."""


def entered(engine: CurrentEngine) -> None:
    """``engine`` is running: calls that take no Engine use it from now on."""
    _entered.append(engine)


def left(engine: CurrentEngine) -> None:
    """``engine`` stopped (or never fully started): forget it."""
    if engine in _entered:
        _entered.remove(engine)


@contextlib.contextmanager
def serving(engine: CurrentEngine) -> Iterator[None]:
    """Tasks created in this block (a worker's) run workflows for ``engine``."""
    token = _serving.set(engine)
    try:
        yield
    finally:
        _serving.reset(token)


def latest() -> CurrentEngine:
    """The Engine entered most recently and not yet left.

    Raises:
        RuntimeError: when no Engine is running.
    """
    if not _entered:
        raise RuntimeError(
            "no perdure Engine is running: use `async with perdure.Engine(...) as engine:`"
        )
    return _entered[-1]


def current() -> CurrentEngine:
    """The Engine whose worker runs the calling code, else the one entered most recently.

    Raises:
        RuntimeError: when no Engine is running.
    """
    return _serving.get() or latest()


def public_url() -> str | None:
    """The base URL webhooks are served under, for code running now.

    The ``public_url`` of the Engine whose worker runs the calling workflow, else of
    the Engine entered most recently, else ``$PERDURE_PUBLIC_URL``; None when unset.
    """
    engine = _serving.get() or (_entered[-1] if _entered else None)
    if engine is not None and engine.public_url:
        return engine.public_url
    return os.environ.get("PERDURE_PUBLIC_URL", "").rstrip("/") or None
