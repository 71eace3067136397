"""What a fork copies: the original run's log up to the step it is forked from.

`Engine.fork` asks here for the events a fork begins with. The rule: every event before
the first event of the chosen correlation id (``charge#1``), so that call, and all the
workflow does after it, runs again on today's code, while every call before it replays
from its recorded result and is not executed again.

Left out of the copy: ``run_created`` (the store writes the fork's own, naming the
original in ``forked_from``) and ``run_blocked``/``run_unblocked`` (what happened to the
original, written by the store, not part of what the workflow did).

A fork point where the original still holds a hook it created before that point is
refused: the fork would hold the same token, and a token is unique among live hooks (the
two runs would fight over every resume). Fork from the hook's own call instead (the fork
then creates its hook again, and may be given another token), or after it was disposed.

Copied events keep their data, so the fork replays them exactly. Their stored times are
the fork's: the workflow's clock (`perdure.now`) reads the fork's time in the copied
part, and a sleep keeps its recorded wake time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure import _log
from perdure._records import EventType, NewEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from perdure._records import Event

__all__ = ["UnknownStepError", "fork_prefix", "step_ids"]


class UnknownStepError(ValueError):
    """The log holds no durable call with the id a fork was asked to start from.

    A ValueError, as `Engine.fork` documents; its own type lets the CLI tell a mistyped
    step id (wrong usage, exit 2) from a fork point it refuses (exit 1).
    """


_NOT_COPIED = frozenset({EventType.RUN_CREATED, EventType.RUN_BLOCKED, EventType.RUN_UNBLOCKED})
_NOT_CALLS = frozenset({EventType.PATCH_MARKED, EventType.ATTRIBUTES_SET, EventType.STREAM_WRITTEN})


def step_ids(events: Sequence[Event]) -> list[str]:
    """The correlation ids of the durable calls in a log, in the order first logged.

    Patch markers, attributes and stream chunks are left out: answers to
    `perdure.patched`, labels (`perdure.set_attributes`) and output, not calls.
    """
    seen: dict[str, None] = {}
    for event in events:
        cid = event.correlation_id
        if cid is not None and event.type not in _NOT_CALLS:
            seen.setdefault(cid, None)
    return list(seen)


def fork_prefix(run_id: str, events: Sequence[Event], from_step: str) -> list[NewEvent]:
    """The events a fork of ``run_id`` from ``from_step`` begins with (see the module).

    Raises:
        ValueError: the log holds no call ``from_step`` (the message names those it
            holds), or the original holds a live hook created before it.
    """
    held = step_ids(events)
    if from_step not in held:
        listed = ", ".join(held) if held else "none"
        raise UnknownStepError(
            f"run {run_id!r} has no step {from_step!r} in its log; its step ids: {listed}"
        )
    prefix: list[NewEvent] = []
    live_hooks: dict[str, str] = {}
    for event in events:
        if event.correlation_id == from_step:
            break
        if event.type in _NOT_COPIED:
            continue
        if event.type is EventType.HOOK_CREATED:
            created = _log.HookCreated.of(event, run_id=run_id)
            if created.error is None:
                live_hooks[created.token] = created.correlation_id
        elif event.type is EventType.HOOK_DISPOSED:
            live_hooks.pop(_log.HookDisposed.of(event, run_id=run_id).token, None)
        prefix.append(NewEvent(event.type, event.correlation_id, event.data))
    if live_hooks:
        calls = ", ".join(sorted(live_hooks.values()))
        raise ValueError(
            f"cannot fork run {run_id!r} from {from_step!r}: its hook {calls} is live at "
            "that point and a fork would hold the same token; fork from the hook's call "
            "or from a step after the hook was disposed"
        )
    return prefix
