"""The live workers as one fleet: which code versions of each workflow it can run.

A deploy is safe only if someone can see what is running where. Workers record in the
store the workflows they define, each with its code version, and heartbeat
(`perdure.stores.WorkerStore.live_workers`); this module answers, from that list, the
questions the views and the workers ask of it: which versions of a workflow the live
workers define, which version the worker holding a run has, and whether any live
worker defines a workflow at all. A run whose workflow no live worker defines waits for
a worker that may never come: the views say so, and a worker blocks it
(`perdure._runtime._orphans`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._records import RunStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from perdure._records import RunRecord, WorkerRecord

__all__ = ["Fleet", "no_live_worker"]


class Fleet:
    """The live workers, indexed for the questions asked of them."""

    __slots__ = ("_by_id", "_versions", "workers")

    def __init__(self, workers: Iterable[WorkerRecord]) -> None:
        self.workers = list(workers)
        self._by_id = {worker.id: worker for worker in self.workers}
        self._versions: dict[str, set[str]] = {}
        for worker in self.workers:
            for name, version in worker.workflows.items():
                self._versions.setdefault(name, set()).add(version)

    def defines(self, workflow: str) -> bool:
        """Whether some live worker defines ``workflow``."""
        return workflow in self._versions

    def versions(self, workflow: str) -> list[str]:
        """The versions of ``workflow`` the live workers define, sorted."""
        return sorted(self._versions.get(workflow, ()))

    def holder_version(self, run: RunRecord) -> str | None:
        """The version of the run's workflow on the live worker holding it, or None."""
        holder = self._by_id.get(run.owner) if run.owner is not None else None
        return holder.workflows.get(run.workflow) if holder is not None else None

    def stranded(self, run: RunRecord) -> str | None:
        """Why no worker can take the run ("no live worker defines ..."), or None.

        Only for a run waiting for a worker (pending or running, not held): a blocked
        run says why in its reason, and an ended one waits for nothing.
        """
        if run.status.is_terminal or run.status is RunStatus.BLOCKED or run.owner is not None:
            return None
        if self.defines(run.workflow):
            return None
        return no_live_worker(run.workflow)


def no_live_worker(workflow: str) -> str:
    """The words every view and reason uses for a workflow no live worker defines."""
    return f"no live worker defines workflow {workflow!r}"
