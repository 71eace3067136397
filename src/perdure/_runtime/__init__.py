"""The worker side of perdure: claiming runs, driving them, and running queued steps.

``_worker`` is the claim loop (leases, heartbeats, eviction, wake-ups), ``_actor`` one
run held in memory (its instance and its ordered log writer), ``_queues`` the step
tasks of queues, ``_attempts`` the one attempt-and-retry loop both run steps with,
``_outage`` the one "retry until the store answers" rule, ``_lease`` the worker's lease
on the monotonic clock (nothing begins on one that may have lapsed), ``_blocked`` and
``_orphans`` the blocked runs a worker retries and the ones it blocks (no live worker
defines them, or they keep killing their worker), and ``_hosts`` what the actor and
the queue runner may ask of the worker. Imports go one way: the worker
imports the others, and nothing imports the worker. The `Engine` owns one `Worker`.
"""

from perdure._runtime._orphans import check_poison_after
from perdure._runtime._queues import validate_queues
from perdure._runtime._worker import Worker, WorkerStatistics

__all__ = ["Worker", "WorkerStatistics", "check_poison_after", "validate_queues"]
