"""examples/schedules.py, the README's schedules, runs as shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "schedules.py"


@pytest.mark.slow
def test_the_schedules_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    """A declared schedule stored at start, three every-second ticks on real time, a
    backfill across DST that a second backfill repeats, a trigger while paused, a delete."""
    env = {**os.environ, "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path}/schedules.db"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "morning_digest: 0 9 * * MON-FRI in Europe/Paris",
        "heartbeat: 3 runs: api ok, api ok, api ok",
        "backfilled: morning_digest@2026-03-27T08:00:00Z morning_digest@2026-03-30T07:00:00Z",
        "backfilled again, same runs: True",
        "triggered: daily digest sent",
        "schedules: ['morning_digest']",
    ]
