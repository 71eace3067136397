"""examples/deadlines_attributes.py, the README's deadlines, attributes and pages, runs
as shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "deadlines_attributes.py"


@pytest.mark.slow
def test_the_deadlines_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    """Runs found by their attributes, one cancelled at its deadline saying so, and the
    runs listed two a page."""
    env = {**os.environ, "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path}/deadlines.db"}
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
        "order-0: charged 500",
        "order-1: charged 2500",
        "order-2: charged 900",
        "acme: {'charged': True, 'customer': 'acme', 'tier': 'gold'}",
        "acme: {'charged': True, 'customer': 'acme', 'tier': 'basic'}",
        "order-9 cancelled: deadline of 0.5s passed",
        "pages: [['globex', 'acme'], ['acme']]",
    ]
