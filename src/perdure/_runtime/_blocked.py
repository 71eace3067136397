"""Blocked runs that this worker's code may mend: it tries them again by itself.

A run is blocked when the code of a worker could not continue it (its replay diverged
from the log, or the workflow's own code raised one of its ``block_on`` errors). The
usual cure is a deploy: new code that makes the run's durable calls again, or that has
the bug fixed. So a worker tries again every blocked run of a workflow it defines
whose log shows no ``run_blocked`` written by code of its own version: deploying the
fix unblocks the runs, with no command. Code that blocked a run once does not try it
again by itself (``engine.unblock`` does), so two live versions that both block a run
do not take turns at it forever; two versions of which one can run it settle when
that one claims it.

The look costs one indexed read of the blocked runs per worker maintenance round, and
one read of each blocked run's log: blocked runs are few, and a fleet with many is
one with a problem to look at, not a hot path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from perdure import _log
from perdure._log import LogFormatError
from perdure._records import EventType, RunStatus
from perdure._workflow import lookup_workflow

if TYPE_CHECKING:
    from datetime import datetime

    from perdure.stores import Store

__all__ = ["retry_blocked"]

logger = logging.getLogger("perdure.worker")

_LOOK_AT = 100
"""How many blocked runs one round looks at, the oldest ones last."""


async def retry_blocked(store: Store, worker_id: str, now: datetime) -> int:
    """Make due again each blocked run this worker's code has not blocked; how many."""
    tried = 0
    for run in await store.list_runs(status=RunStatus.BLOCKED, limit=_LOOK_AT):
        spec = lookup_workflow(run.workflow)
        if spec is None:
            continue
        try:
            blocked_by = {
                _log.RunBlocked.of(event).version
                for event in await store.events(run.id)
                if event.type is EventType.RUN_BLOCKED
            }
        except LogFormatError:  # a log that cannot be read: `perdure unblock` tries it
            continue  # (raised here, it failed every maintenance round: issue 11)
        if spec.version in blocked_by:
            continue
        if await store.unblock_run(run.id, now, by=worker_id) is not None:
            logger.info(
                "trying blocked run %s again: this worker's code of workflow %r (version "
                "%s) is not the code that blocked it",
                run.id,
                run.workflow,
                spec.version,
            )
            tried += 1
    return tried
