"""Runs that no live worker can take, and runs that keep killing their worker: blocked.

A worker claims only runs of workflows it defines, so a run whose workflow was renamed
or removed in a deploy would wait for ever, pending or running, with nothing to say
why. Each worker's maintenance looks now and then at the runs waiting to be claimed;
those whose workflow no live worker defines (`perdure._fleet.Fleet`), due for longer
than ``orphan_after`` (a rolling deploy registers the new workers within that), it
claims and blocks, with "no live worker defines workflow 'x'" as the reason and no
code version: any worker that defines the workflow later tries such a run again by
itself (`perdure._runtime._blocked`), since no version of its own blocked it.

The look reads the newest unended runs (`_LOOK_AT` pending and as many running), and
then claims every due run of the stranded workflows it found, however old: one more
listing every ``_EVERY`` rounds per worker, not a pass's cost.

A poison run is one whose recovery kills its worker: a step that exhausts memory or
crashes the interpreter kills every worker that claims the run, one after the other.
The store counts the recoveries of each run in a row without progress
(`perdure._records.RunRecord.recoveries`); a worker that claims a run counted
``poison_after`` times blocks it instead of running it (`poison_reason`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from perdure import _log
from perdure._errors import LeaseLostError
from perdure._fleet import Fleet, no_live_worker
from perdure._records import RunStatus
from perdure._workflow import lookup_workflow, registered_workflows

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from perdure.stores import Store

__all__ = ["block_stranded", "check_poison_after", "defined_workflows", "poison_reason"]

logger = logging.getLogger("perdure.worker")

_LOOK_AT = 100
"""How many of the newest pending, and of the newest running, runs one look reads."""
_CLAIM_AT_MOST = 100
"""How many stranded runs one look blocks (the next look takes the rest)."""


def defined_workflows() -> dict[str, str]:
    """The workflows this process defines, each with its code version."""
    specs = (lookup_workflow(name) for name in registered_workflows())
    return {spec.name: spec.version for spec in specs if spec is not None}


def check_poison_after(value: int) -> int:
    """``value`` if it is a whole number >= 1; else a ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"poison_after must be a whole number >= 1, not {value!r}")
    return value


def poison_reason(recoveries: int) -> str:
    """The reason a poison run is blocked with."""
    return (
        f"poison run: its recovery found its worker dead {recoveries} times in a row with "
        "no progress (a step that crashes the process or exhausts its memory?); blocked "
        "so that it takes no more workers down. Deploy a fix (a worker of another "
        "version tries it again by itself) or run `perdure unblock` to try it now"
    )


async def block_stranded(
    store: Store, worker_id: str, now: datetime, orphan_after: timedelta
) -> int:
    """Block the runs, due for ``orphan_after``, whose workflow no live worker defines."""
    fleet = Fleet(await store.live_workers(now))
    stranded: set[str] = set()
    for status in (RunStatus.PENDING, RunStatus.RUNNING):
        for run in await store.list_runs(status=status, limit=_LOOK_AT):
            if run.owner is None and run.malformed is None and not fleet.defines(run.workflow):
                stranded.add(run.workflow)
    if not stranded:
        return 0
    claimed = await store.claim_runs(
        worker_id, now - orphan_after, _CLAIM_AT_MOST, workflows=sorted(stranded)
    )
    alive = ", ".join(sorted({name for w in fleet.workers for name in w.workflows}))
    for done, run in enumerate(claimed):
        reason = (
            f"{no_live_worker(run.workflow)} (the live workers define: {alive or 'nothing'}):"
            " deploy code that defines it (its workers try the run again by themselves),"
            " or cancel the run"
        )
        try:
            if run.cancel_requested:
                await store.append(worker_id, run.id, [_log.run_cancelled()], now, durable=True)
                continue
            blocked = _log.run_blocked(reason=reason, version=None, worker=worker_id)
            await store.block_run(worker_id, run.id, blocked, now)
        except LeaseLostError:  # taken over, or ended, meanwhile
            continue
        except Exception:
            # Never left held by a worker that runs no actor for them: handed back.
            for left in claimed[done:]:
                with contextlib.suppress(Exception):
                    await store.release_run(worker_id, left.id, now)
            raise
        logger.warning("run %s is blocked, not failed: %s", run.id, reason)
    return len(claimed)
