"""The JSON shapes of flow control, for the CLI and HTTP: limits in use, and why a run waits.

``perdure limits --json`` and ``GET /limits`` print `LimitView`s. A pending run's views
(``perdure runs``/``show``, ``GET /runs/{id}``, the dashboard) carry `RunWaiting`'s key
when it waits on its workflow's concurrency limit: "waiting for a slot: customer=acme,
5 of 5 in use; 2 ahead". Shapes as in `perdure._views`: `TypedDict`s whose fields the
OpenAPI document is generated from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads only this one's fields on 3.11

if TYPE_CHECKING:
    from perdure._flow import LimitUsage, LimitWait

__all__ = ["LimitList", "LimitView", "RunWaiting", "limit_json", "waiting_json"]


class LimitView(TypedDict):
    """One limit key in use, across all workers: ``perdure limits --json``, ``GET /limits``."""

    kind: Annotated[
        str,
        Field(
            description="workflow (a @workflow concurrency Limit), step (a @step "
            "concurrency) or rate (a @step rate)."
        ),
    ]
    key: Annotated[
        str,
        Field(
            description="The workflow's or step's name, then ':' and the key's value "
            "(customer=acme) when the limit has a key."
        ),
    ]
    limit: Annotated[
        int, Field(description="Slots (runs or attempts at once), or starts per period.")
    ]
    in_use: Annotated[
        int,
        Field(
            description="Runs holding a slot, attempts running, or starts in the current window."
        ),
    ]
    waiting: Annotated[
        int, Field(description="Pending runs waiting for a slot (workflow limits only).")
    ]
    period: Annotated[
        float | None, Field(description="A rate's window in seconds; null otherwise.")
    ]


class LimitList(TypedDict):
    """The limits in use, by kind then key."""

    limits: list[LimitView]


class RunWaiting(TypedDict, total=False):
    """Why a pending run waits: in a run's view when it was read with its limit."""

    waiting_for: Annotated[
        str | None,
        Field(
            description="Why the pending run waits on its workflow's concurrency limit "
            "('waiting for a slot: customer=acme, 5 of 5 in use; 2 ahead'); null when it "
            "does not."
        ),
    ]


def limit_json(usage: LimitUsage) -> LimitView:
    """A limit in use as JSON."""
    return LimitView(
        kind=usage.kind,
        key=usage.key,
        limit=usage.limit,
        in_use=usage.in_use,
        waiting=usage.waiting,
        period=usage.period,
    )


def waiting_json(wait: LimitWait | None) -> RunWaiting:
    """Why the run waits, if it does."""
    return RunWaiting(waiting_for=None if wait is None else wait.reason)
