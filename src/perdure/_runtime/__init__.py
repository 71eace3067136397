"""The worker side of perdure: claiming runs, driving them, and running queued steps.

``_worker`` is the claim loop (leases, heartbeats, eviction, wake-ups), ``_actor`` one
run held in memory (its instance and its ordered log writer), ``_queues`` the step
tasks of queues. The `Engine` owns one `Worker`.
"""

from perdure._runtime._queues import validate_queues
from perdure._runtime._worker import Worker, WorkerStatistics

__all__ = ["Worker", "WorkerStatistics", "validate_queues"]
