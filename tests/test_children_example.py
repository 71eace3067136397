"""examples/children.py, the README's child workflows and cancellation, runs as shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "children.py"


@pytest.mark.slow
def test_the_children_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    """Gathered children with one failure caught, a detached audit, and a cancel that
    reaches the attached child's running step but not the detached child."""
    env = {**os.environ, "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path}/children.db"}
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
    lines = done.stdout.splitlines()
    assert lines[0] == "book: charged 1200"
    assert lines[1].startswith("failed: card declined for piano (child run ")
    assert lines[2:] == [
        "child audit: completed",
        "child pay: completed",
        "child pay: failed",
        "order-2 cancelled",
        "child audit: completed",
        "child pack_order: cancelled",
        "packing order-2",
        "packing of order-2 stopped, cleaned up",
    ]
