"""examples/flow_control.py, the README's flow control, runs as shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flow_control.py"


@pytest.mark.slow
def test_the_flow_control_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    """Two reports per customer at most, one run for a duplicate delivery, and one
    debounced run with the last edit."""
    env = {**os.environ, "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path}/flow.db"}
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
        "acme: at most 2 reports at once",
        "globex: at most 2 reports at once",
        "initech: at most 2 reports at once",
        "one run for a duplicate delivery: True",
        "debounced: handled final",
    ]
