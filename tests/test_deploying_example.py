"""examples/deploying/deploy.py, the README's "Deploying new code", runs as written.

It runs each version of the module in a process of its own and ``perdure
check-replay`` as a command, so this is a test of real processes end to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "deploying" / "deploy.py"


def test_the_deploying_example_goes_through_each_situation(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), f"sqlite:///{tmp_path}/shop.db"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "order-1: ['reserved order-1', 'charged order-1', 'receipt for order-1']" in done.stdout
    assert "run order-2 of workflow 'shop-checkout' would block" in done.stdout
    assert "shop_v2_unpatched.py:27 in checkout" in done.stdout
    assert "order-2 is blocked: run order-2 of workflow 'shop-checkout' no longer" in done.stdout
    assert "order-2: ['reserved order-2', 'charged order-2']" in done.stdout
    assert "order-3: ['charged order-3', 'reserved order-3']" in done.stdout
    assert "1 of 1 run would block" in done.stderr
