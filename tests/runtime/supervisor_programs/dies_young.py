"""A workflow module whose every import but the first ends its process at once.

test_worker_processes.py serves it with ``perdure worker --processes 2``: the
supervisor's own import (which checks that the modules define workflows) is the first
and lives; each child's is not, and exits with code 3 as it starts, as a child whose
code or environment is broken would, over and over. Each import appends ``PID BEGAN
IMPORTED`` to ``$DIES_YOUNG_LOG``: when the process began (before Python's own
start-up, which takes seconds on a busy machine) and when it imported this module,
both on the monotonic clock, so the test knows when the supervisor started each child
and when each died.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from perdure import workflow


def _age() -> float:
    """Seconds since this process began (its start and the uptime, both since boot)."""
    started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - started / os.sysconf("SC_CLK_TCK")


_log = Path(os.environ["DIES_YOUNG_LOG"])
with _log.open("a") as _out:
    _now = time.monotonic()
    _out.write(f"{os.getpid()} {_now - _age()} {_now}\n")
if len(_log.read_text().splitlines()) > 1:
    os._exit(3)


@workflow(name="dies-young")
async def nothing() -> None:
    """Never runs: no child lives long enough."""
