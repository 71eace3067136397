"""``perdure stats`` and ``perdure worker --metrics-port``, run as real subprocesses.

`stats` reads the aggregates the dashboard's Metrics page draws from a SQLite file an
in-test Engine filled; the worker serves this process's OpenTelemetry metrics for
Prometheus, scraped over HTTP and parsed with prometheus_client's parser.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import cli_workflows as wf
from helpers import ChildProcess
from perdure import Engine, WorkflowFailed
from test_cli import DEADLINE, acli, assert_clean_error, cli

WORKFLOWS = str(Path(__file__).resolve().parent / "cli_workflows.py")


async def test_stats_prints_the_aggregates_as_json_and_as_tables(tmp_path: Path) -> None:
    """Two completed runs, one failed, one pending: the JSON counts them, the table too."""
    url = f"sqlite:///{tmp_path}/stats.db"
    async with Engine(url) as engine:
        for n in (1, 2):
            assert await (await engine.start(wf.double_it, n)).result(timeout=DEADLINE) == 2 * n
        with pytest.raises(WorkflowFailed):
            await (await engine.start(wf.fail_it, "boom")).result(timeout=DEADLINE)
    async with Engine(url, worker=False) as engine:
        await engine.start(wf.double_it, 3)

    as_json = await acli(url, "stats", "--json")
    assert as_json.code == 0, as_json
    body = as_json.json()
    assert isinstance(body, dict)
    assert body["totals"] == {
        "started": 4,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
        "pending": 1,
        "blocked": 0,
    }
    assert {w["workflow"]: w["failure_rate"] for w in body["workflows"]} == {
        "cli-double": 0.0,
        "cli-fail": 1.0,
    }
    assert {s["name"] for s in body["steps"]} >= {"double"}
    one = await acli(url, "stats", "--since", "7d", "--workflow", "cli-fail", "--json")
    body = one.json()
    assert isinstance(body, dict)
    assert (body["totals"]["started"], body["totals"]["failed"], body["bucket_seconds"]) == (
        1,
        1,
        84 * 60,
    )
    table = await acli(url, "stats")
    assert table.code == 0, table
    assert "cli-fail" in table.out
    assert "100.0%" in table.out
    assert re.search(r"\b4\s+2\s+1\s+0\s+1\s+0\b", table.out), table.out


def test_stats_refuses_a_bad_window(tmp_path: Path) -> None:
    """A window that is not one exits 2, naming it."""
    url = f"sqlite:///{tmp_path}/stats.db"
    assert cli(url, "migrate").code == 0
    assert_clean_error(cli(url, "stats", "--since", "forever"), 2, "since='forever'")


@pytest.mark.slow
async def test_a_worker_serves_its_metrics_for_prometheus(tmp_path: Path) -> None:
    """``perdure worker --metrics-port 0`` says where; a scrape shows the runs it ran."""
    url = f"sqlite:///{tmp_path}/worker.db"
    argv = [sys.executable, "-m", "perdure", "worker", WORKFLOWS, "--database-url", url]
    worker = ChildProcess("worker", [*argv, "--metrics-port", "0"], tmp_path)
    try:
        line = await worker.line("metrics for Prometheus on ")
        address = line.removeprefix("metrics for Prometheus on ")
        assert address.startswith("http://127.0.0.1:")
        async with Engine(url, worker=False) as engine:
            for n in (1, 2, 3):
                assert await (await engine.start(wf.double_it, n)).result(timeout=DEADLINE) == 2 * n
        async with httpx.AsyncClient() as http:
            page = (await http.get(address)).text
        completed = {
            sample.labels.get("perdure_workflow"): sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "perdure_runs_completed_total"
        }
        assert completed == {"cli-double": 3.0}
        worker.signal(signal.SIGTERM)
        assert await worker.exit_code() == 0
    finally:
        worker.close()
