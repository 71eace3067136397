"""The measurements of perdure alone that `make bench` runs after the comparison.

Issue 15 asks that one `make bench` also show what flow control and schedules cost:

- `flow_limits.py`: steps per second with and without a concurrency limit on a hot key
  (and a step limit), on both stores;
- `schedule_lateness.py`: how late, on real time, a schedule's tick creates its run and
  the run's step begins (p50, p99, max).

DBOS has neither in the same form, so these run perdure alone, each script in a process
of its own on its own fresh databases, as when run by hand; `run.py --no-flow` and
`--no-schedules` skip them. The figures land in ``--json`` under ``"flow"`` and
``"schedules"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchlib import child

FLOW_VARIANTS = ("none", "10 slots", "hot key", "step limit")


def run_script(cmd: list[str], server: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a bench script against ``server`` (its throwaway databases are made there)."""
    env = {**os.environ, "PERDURE_TEST_POSTGRES_URL": server, "NO_COLOR": "1"}
    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=timeout, env=env
    )


def flow_bench(server: str, stores: list[str], quick: bool) -> dict[str, Any]:
    """Run flow_limits.py and print its table; its figures (store -> variant -> figures)."""
    sizes = ["--runs", "100", "--repeat", "1"] if quick else ["--runs", "200", "--repeat", "3"]
    cmd = child("flow_limits.py", "--json", "--stores", ",".join(stores), *sizes)
    try:
        done = run_script(cmd, server, timeout=900)
    except subprocess.TimeoutExpired:
        print("\nflow_limits.py timed out after 900 s")
        return {}
    if done.returncode != 0:
        print(f"\nflow_limits.py failed: {done.stderr.strip()[-2000:]}")
        return {}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["sizes"] = " ".join(sizes)
    print_flow(figures)
    return figures


def print_flow(figures: dict[str, Any]) -> None:
    """The flow limits' table: steps/s of each variant, and the limit's cost."""
    print(
        "\n== the cost of a limit, perdure alone: runs of 10 trivial steps started at once, "
        f"steps/s, best of the repeats (flow_limits.py {figures.get('sizes', '')})"
    )
    print(
        f"   {'store':<10} "
        + " ".join(f"{variant:>11}" for variant in FLOW_VARIANTS)
        + f" {'hot key ÷ 10 slots':>19}"
    )
    for store, by_variant in figures.items():
        if store == "sizes":
            continue
        rates = [by_variant.get(variant, {}).get("steps_per_s") for variant in FLOW_VARIANTS]
        cells = " ".join(f"{rate:>11,.0f}" if rate else f"{'—':>11}" for rate in rates)
        hot, slots = rates[2], rates[1]
        share = f"{hot / slots:>19.2f}" if hot and slots else f"{'—':>19}"
        print(f"   {store:<10} {cells} {share}")


def schedules_bench(server: str, stores: list[str], quick: bool) -> dict[str, Any]:
    """Run schedule_lateness.py (real time) and print its table; its figures by store."""
    ticks = 10 if quick else 30
    with tempfile.TemporaryDirectory(prefix="perdure_bench_sched_") as folder:
        out = Path(folder) / "schedules.json"
        cmd = child(
            "schedule_lateness.py",
            *("--ticks", str(ticks), "--workers", "2", "--stores", ",".join(stores)),
            *("--json", str(out)),
        )
        timeout = len(stores) * (ticks + 90)
        try:
            done = run_script(cmd, server, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"\nschedule_lateness.py timed out after {timeout} s")
            return {}
        if done.returncode != 0 or not out.exists():
            print(f"\nschedule_lateness.py failed: {(done.stderr or done.stdout).strip()[-2000:]}")
            return {}
        figures: dict[str, Any] = json.loads(out.read_text())
    print_schedules(figures)
    return figures


def print_schedules(figures: dict[str, Any]) -> None:
    """The schedule lateness table: ms after the tick, p50, p99 and max."""
    some: dict[str, Any] = next(iter(figures.values()), {})
    print(
        "\n== schedule tick lateness, perdure alone, real time: one schedule every second, "
        f"{some.get('ticks', '?')} ticks, {some.get('workers', '?')} workers; ms after the tick "
        "(schedule_lateness.py)"
    )
    print(f"   {'store':<10} {'figure':<32} {'p50':>8} {'p99':>8} {'max':>8}")
    labels = {"created": "run created", "step_began": "its step began"}
    for store, found in figures.items():
        for key, label in labels.items():
            row = found[key]
            print(
                f"   {store:<10} {label:<32} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{row['max_ms']:>8.2f}"
            )
