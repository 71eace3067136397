"""PNG charts of one `make bench` run, drawn from the report that ``--json`` saves.

    bench/.venv/bin/python bench/charts.py results.json [--out bench/charts]

`run.py` calls `write_charts` at the end of every run (``--charts DIR``, default
``bench/charts/``; ``--no-charts`` to skip), and BENCHMARKS.md shows the PNGs of the
recorded run. Three charts, one panel per store, one colour per library:

- ``history.png`` (workload i): a step's cost against the number of steps already in
  the run's history, for runs of 100, 1,000 and 10,000 steps, on log-log axes. A
  design that replays the history at each step draws a line of slope 1 there (the
  grey reference); a flat line is a cost that does not grow with the history.
- ``latency.png`` (workloads b and d): p50, p90 and p99 of start-to-result and of a
  resume from the same and from another process, in ms, on a log axis.
- ``throughput.png`` (workload c): steps per second by number of worker processes:
  each library's workload c (one process starts the runs and runs them), and, hatched,
  the same burst on ``perdure worker --processes N`` with the runs started by another
  process (the figures ``processes_N_steps_per_s`` of workload c).

A chart whose workloads did not run is not written, so a partial run leaves the other
charts as they were. matplotlib is installed in the bench environment only (the
Makefile's bench target), never as a dependency of perdure; without it no chart is
written and the run says so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import HERE

CHARTS = HERE / "charts"
COLOURS = {"perdure": "tab:blue", "dbos": "tab:orange", "temporal": "tab:green"}
NAMES = {"perdure": "perdure", "dbos": "DBOS Transact", "temporal": "Temporal"}
STORE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
SIZE_STYLES = {100: (":", "o"), 1000: ("--", "s"), 10000: ("-", "^")}
PROCESSES_KEY = re.compile(r"processes_(\d+)_steps_per_s|steps_per_s_(\d+)_?p(?:rocesses)?")

Report = dict[str, Any]


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, or None when it is not installed.

    Imported by name so that perdure's own environment (where mypy checks bench/) needs
    no matplotlib: it is typed as Any here.
    """
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def footer(report: Report) -> str:
    """Where the figures come from: date, commit, machine, sizes."""
    env = report.get("environment", {})
    return (
        f"make bench, {env.get('date', '?')}, perdure {env.get('perdure_commit', '?')}, "
        f"{env.get('cpus', '?')} cores, sizes: {report.get('sizes', '?')}"
    )


def panels(
    plt: Any, stores: Sequence[str], title: str, report: Report, height: float = 4.6
) -> tuple[Any, list[Any]]:
    """A figure with one panel per store, its title and footer."""
    fig, axes = plt.subplots(1, len(stores), figsize=(6.2 * len(stores), height), squeeze=False)
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.01, footer(report), fontsize=7, color="grey")
    for ax, store in zip(axes[0], stores, strict=True):
        ax.set_title(STORE_NAMES.get(store, store), fontsize=10)
        ax.grid(visible=True, which="major", alpha=0.3)
    return fig, list(axes[0])


def save(plt: Any, fig: Any, path: Path, bottom: float = 0.03) -> Path:
    """Write the figure as a PNG and close it (``bottom``: room kept below the panels)."""
    fig.tight_layout(rect=(0, bottom, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ran(report: Report, workload: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The figures of ``workload`` by store and library, without failed runs."""
    per_store = report.get("results", {}).get(workload, {})
    return {
        store: {lib: f for lib, f in by_lib.items() if "error" not in f}
        for store, by_lib in per_store.items()
        if any("error" not in f for f in by_lib.values())
    }


def history_chart(plt: Any, report: Report, out: Path) -> Path | None:
    """Workload i: µs per step in each tenth of a run, against the history behind it."""
    data = ran(report, "i")
    if not data:
        return None
    fig, axes = panels(
        plt, list(data), "A step's cost against the history behind it (workload i)", report, 5.8
    )
    for ax, by_lib in zip(axes, data.values(), strict=True):
        points: list[tuple[float, float]] = []
        for lib, figures in by_lib.items():
            for key in sorted((k for k in figures if k.startswith("windows_")), key=len):
                n = int(key.removeprefix("windows_"))
                xs = [row[0] for row in figures[key]]
                ys = [row[1] for row in figures[key]]
                style, marker = SIZE_STYLES.get(n, ("-", "."))
                ax.plot(
                    xs,
                    ys,
                    linestyle=style,
                    marker=marker,
                    markersize=4,
                    color=COLOURS.get(lib),
                    label=f"{NAMES.get(lib, lib)}, run of {n:,}",
                )
                points.extend(zip(xs, ys, strict=True))
        # The reference starts at perdure's typical step (the median of its windows)
        # and rises as a replay of the whole history at each step would.
        mine = sorted(
            y
            for lib, figures in by_lib.items()
            if lib == "perdure"
            for key, rows in figures.items()
            if key.startswith("windows_")
            for _, y, _ in rows
        )
        if mine and points:
            x0, x1 = min(x for x, _ in points), max(x for x, _ in points)
            y0 = mine[len(mine) // 2]
            ax.plot(
                [x0, x1],
                [y0, y0 * x1 / x0],
                color="grey",
                alpha=0.6,
                linewidth=1,
                label="cost ∝ history (a replay per step), for scale",
            )
            ys_all = [y for _, y in points]
            ax.set_ylim(min(ys_all) / 2, max(ys_all) * 8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps already in the run's history")
        ax.set_ylabel("µs per step (median of each tenth of the run)")
    # One legend for both panels, below them: inside, it hid the lines.
    labelled: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labelled.setdefault(label, handle)
    fig.legend(
        list(labelled.values()),
        list(labelled),
        loc="lower center",
        ncol=4,
        fontsize=7,
        bbox_to_anchor=(0.5, 0.035),
    )
    return save(plt, fig, out / "history.png", bottom=0.13)


def short(value: float) -> str:
    """A bar's label: three significant digits, without an exponent."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


LATENCY_GROUPS = (
    ("b", "", "start → result"),
    ("d", "same_", "resume, same process"),
    ("d", "cross_", "resume, other process"),
)


def latency_chart(plt: Any, report: Report, out: Path) -> Path | None:
    """Workloads b and d: p50, p90, p99 in ms, grouped bars per library."""
    b, d = ran(report, "b"), ran(report, "d")
    stores = [store for store in ("sqlite", "postgres") if store in b or store in d]
    if not stores:
        return None
    fig, axes = panels(
        plt, stores, "Latency percentiles (workload b: start to result; d: resume)", report
    )
    percentiles = ("p50", "p90", "p99")
    for ax, store in zip(axes, stores, strict=True):
        sources = {"b": b.get(store, {}), "d": d.get(store, {})}
        libs = [lib for lib in COLOURS if any(lib in by_lib for by_lib in sources.values())]
        labels = [p for _ in LATENCY_GROUPS for p in percentiles]
        width = 0.8 / max(1, len(libs))
        for index, lib in enumerate(libs):
            xs, ys = [], []
            for slot, (workload, prefix, _) in enumerate(LATENCY_GROUPS):
                figures = sources[workload].get(lib, {})
                for offset, p in enumerate(percentiles):
                    value = figures.get(f"{prefix}{p}_ms")
                    if value:
                        xs.append(slot * len(percentiles) + offset + (index - 0.4) * width)
                        ys.append(value)
            bars = ax.bar(
                xs, ys, width, align="edge", color=COLOURS[lib], label=NAMES.get(lib, lib)
            )
            ax.bar_label(bars, fmt=short, fontsize=5, rotation=90, padding=2)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        for slot, (_, _, name) in enumerate(LATENCY_GROUPS):
            middle = slot * len(percentiles) + (len(percentiles) - 1) / 2
            ax.text(middle, -0.1, name, transform=ax.get_xaxis_transform(), ha="center")
            if slot:
                ax.axvline(slot * len(percentiles) - 0.5, color="grey", linewidth=0.5)
        ax.set_yscale("log")
        ax.set_ylabel("ms (log scale)")
        ax.margins(y=0.15)
        ax.legend(fontsize=7)
    return save(plt, fig, out / "latency.png")


def by_processes(figures: dict[str, Any]) -> dict[int, float]:
    """Steps per second of workload c's burst on N worker processes (perdure worker)."""
    found: dict[int, float] = {}
    for key, value in figures.items():
        match = PROCESSES_KEY.fullmatch(key)
        if match and isinstance(value, int | float):
            found[int(match.group(1) or match.group(2))] = value
    return dict(sorted(found.items()))


def throughput_chart(plt: Any, report: Report, out: Path) -> Path | None:
    """Workload c: steps per second by number of worker processes, bars per series.

    Two kinds of series: each library's workload c proper (the runs started in the
    process that runs them, one process), and a burst on ``perdure worker --processes
    N`` whose runs another process starts, hatched.
    """
    data = ran(report, "c")
    if not data:
        return None
    fig, axes = panels(
        plt, list(data), "Throughput by worker processes (workload c: R runs of 10 steps)", report
    )
    for ax, by_lib in zip(axes, data.values(), strict=True):
        series: list[tuple[str, str, dict[int, float]]] = []
        for lib, figures in by_lib.items():
            if figures.get("steps_per_s"):
                series.append((lib, "", {1: figures["steps_per_s"]}))
        for lib, figures in by_lib.items():
            if processes := by_processes(figures):
                series.append((lib, "//", processes))
        counts = sorted({n for _, _, points in series for n in points})
        at = {n: [i for i, (_, _, points) in enumerate(series) if n in points] for n in counts}
        width = 0.8 / max(len(members) for members in at.values())
        for index, (lib, hatch, points) in enumerate(series):
            name = NAMES.get(lib, lib)
            label = (
                f"{name}: worker --processes N, runs started by another process"
                if hatch
                else f"{name}: workload c, runs started where they run"
            )
            xs = [counts.index(n) + (at[n].index(index) - len(at[n]) / 2) * width for n in points]
            bars = ax.bar(
                xs,
                list(points.values()),
                width,
                align="edge",
                color=COLOURS.get(lib),
                hatch=hatch,
                edgecolor="white",
                label=label,
            )
            ax.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
        top = max(value for _, _, points in series for value in points.values())
        ax.set_ylim(0, top * 1.4)
        ax.set_xticks(range(len(counts)), [f"{n} process{'es' if n > 1 else ''}" for n in counts])
        ax.set_xlim(-0.7, len(counts) - 0.3)
        ax.set_ylabel("steps per second")
        ax.legend(fontsize=7, loc="upper left")
    return save(plt, fig, out / "throughput.png")


def write_charts(report: Report, out: Path = CHARTS) -> list[Path]:
    """Every chart whose workloads are in ``report``; the files written."""
    plt = pyplot()
    if plt is None:
        print("\n!! matplotlib is not installed here: no charts (make bench installs it)")
        return []
    written = [
        chart(plt, report, out) for chart in (history_chart, latency_chart, throughput_chart)
    ]
    paths = [path for path in written if path is not None]
    if paths:
        print("\ncharts: " + ", ".join(str(path) for path in paths))
    return paths


def main() -> None:
    """Draw the charts of a run saved with ``run.py --json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("report", help="a file written by run.py --json")
    parser.add_argument("--out", default=str(CHARTS), help="folder of the PNGs")
    args = parser.parse_args()
    write_charts(json.loads(Path(args.report).read_text()), Path(args.out))


if __name__ == "__main__":
    main()
