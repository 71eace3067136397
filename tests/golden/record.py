"""Record golden histories: run a scenario of ``workflows.py`` and write its log as JSON.

Usage, from the repository's root::

    .venv/bin/python tests/golden/record.py                 # list scenarios and files
    .venv/bin/python tests/golden/record.py --new NAME ...  # record new files

Each scenario runs on a fresh in-memory store with perdure's fake clock (sleeps and
retry delays take no time), and ``{NAME}.json`` gets the run's whole log (each event's
seq, type, correlation id, data and time), its workflow, input and final status, and
the perdure version that wrote it. The new file is replayed at once (``check.py``),
as ``test_golden.py`` will replay it on every change from then on.

**A golden file is never regenerated.** It is a log written by a release of perdure,
and logs already written must replay on every later release: a change that makes
``test_golden.py`` fail would break runs in flight, and rewriting the file would hide
that. So this script refuses to write a file that exists. A change that needs a new
history (a new event type, a new workflow) adds a scenario under a new name and
records it with ``--new``, beside the old files, which stay as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parent
sys.path.insert(0, str(FOLDER.parent))  # the tests folder: `golden` is a package in it

from golden.check import check, load  # noqa: E402 (after the path is set)
from golden.workflows import SCENARIOS, Scenario  # noqa: E402
from perdure._check import export_json  # noqa: E402
from perdure.testing import FakeClock, memory_engine  # noqa: E402


async def record(scenario: Scenario) -> dict[str, Any]:
    """Run the scenario to its end; the golden file's content."""
    run_id = f"golden-{scenario.name.replace('_', '-')}"
    clock = FakeClock(autojump=scenario.autojump)
    if scenario.setup is not None:
        scenario.setup()
    async with memory_engine(clock=clock, **scenario.engine_options) as engine:
        run = await engine.start(scenario.workflow, *scenario.args, run_id=run_id)
        if scenario.drive is not None:
            await scenario.drive(engine, run)
        status = await run.status()
        while not status.is_terminal:
            await asyncio.sleep(0.01)
            status = await run.status()
        record = await run.refresh()
        events = await run.events()
    # `perdure export`'s layout, so that an exported run and a golden file are one format.
    return {
        **export_json(record, events),
        "name": scenario.name,
        "description": (scenario.workflow.__doc__ or "").strip(),
    }


def main(argv: list[str] | None = None) -> int:
    """List the scenarios, or record the ones named with ``--new``; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--new",
        action="append",
        default=[],
        metavar="NAME",
        help="record the scenario NAME into NAME.json, which must not exist yet",
    )
    options = parser.parse_args(argv)
    if not options.new:
        for name in SCENARIOS:
            path = FOLDER / f"{name}.json"
            print(f"{name:24} {'recorded' if path.exists() else 'not recorded'}")
        return 0
    for name in options.new:
        path = FOLDER / f"{name}.json"
        if name not in SCENARIOS:
            print(f"no scenario is named {name!r}; see {FOLDER / 'workflows.py'}", file=sys.stderr)
            return 2
        if path.exists():
            print(
                f"{path} exists: golden files are never regenerated (see this script's "
                "docstring); record a new scenario under a new name instead",
                file=sys.stderr,
            )
            return 2
    for name in options.new:
        path = FOLDER / f"{name}.json"
        content = asyncio.run(record(SCENARIOS[name]))
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
        check(load(path))  # a file that does not replay today is no golden history
        print(f"recorded {path.name}: {len(content['events'])} events, {content['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
