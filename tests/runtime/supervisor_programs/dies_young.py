"""A workflow module whose every import but the first ends its process at once.

test_worker_processes.py serves it with ``perdure worker --processes 2``: the
supervisor's own import (which checks that the modules define workflows) is the first
and lives; each child's is not, and exits with code 3 as it starts, as a child whose
code or environment is broken would, over and over. Each import appends ``PID
MONOTONIC`` to ``$DIES_YOUNG_LOG``, so the test knows when each child started.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from perdure import workflow

_log = Path(os.environ["DIES_YOUNG_LOG"])
with _log.open("a") as _out:
    _out.write(f"{os.getpid()} {time.monotonic()}\n")
if len(_log.read_text().splitlines()) > 1:
    os._exit(3)


@workflow(name="dies-young")
async def nothing() -> None:
    """Never runs: no child lives long enough."""
