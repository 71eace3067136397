"""Schedules in view: ``perdure schedules`` (list, pause, resume, trigger, backfill,
delete; ``--json``), the HTTP API's ``/schedules`` endpoints and their OpenAPI paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from perdure import Engine, workflow
from perdure._schedules import tick_run_id
from perdure.http import create_app
from perdure.testing import FakeClock
from test_cli import acli

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh database of this test's own."""
    return f"sqlite:///{tmp_path}/schedules.db"


@workflow(name="cli-scheduled-report")
async def report(day: str) -> str:
    """A scheduled job."""
    return day


def admin(url: str) -> Engine:
    """An Engine without a worker (no tick starts a run behind the test's back)."""
    return Engine(url, worker=False, clock=FakeClock(NOW, autojump=False))


@pytest.mark.slow
async def test_schedules_command(url: str) -> None:
    """The list (table and JSON: next fire time, state, last runs), pause, resume,
    trigger, an idempotent backfill, delete; exit 2 for an unknown id or bad times."""
    async with admin(url) as engine:
        await engine.schedule(
            "daily", report, cron="0 9 * * *", tz="Europe/Paris", args=("monday",)
        )
    listed = await acli(url, "schedules", "--json")
    assert listed.code == 0, listed
    rows: Any = listed.json()
    assert [(r["id"], r["workflow"], r["tz"], r["paused"]) for r in rows] == [
        ("daily", "cli-scheduled-report", "Europe/Paris", False)
    ]
    assert rows[0]["next_fire_at"] == "2030-01-02T08:00:00+00:00"
    assert rows[0]["last_runs"] == []
    table = await acli(url, "schedules")
    assert table.code == 0, table
    assert "daily" in table.out
    assert "2030-01-02 08:00:00" in table.out

    paused = await acli(url, "schedules", "pause", "daily", "--json")
    assert paused.code == 0, paused
    shown: Any = paused.json()
    assert (shown["paused"], shown["next_fire_at"]) == (True, None)
    resumed = await acli(url, "schedules", "resume", "daily")
    assert resumed.code == 0, resumed

    triggered = await acli(url, "schedules", "trigger", "daily", "--json")
    assert triggered.code == 0, triggered
    run_id = triggered.json()["id"]  # type: ignore[index]
    assert run_id.startswith("daily@manual-")

    args = ("schedules", "backfill", "daily", "--start", "2029-12-01", "--end", "2029-12-02T12:00")
    backfilled = await acli(url, *args, "--json")
    assert backfilled.code == 0, backfilled
    ids = [r["id"] for r in backfilled.json()]  # type: ignore[attr-defined]
    days = [datetime(2029, 12, day, 8, tzinfo=UTC) for day in (1, 2)]
    assert ids == [tick_run_id("daily", day) for day in days]
    again = await acli(url, *args, "--json")
    assert [r["id"] for r in again.json()] == ids  # type: ignore[attr-defined]

    listed = await acli(url, "schedules", "--json")
    last: Any = listed.json()
    assert {r["id"] for r in last[0]["last_runs"]} == {run_id, *ids}

    bad = await acli(url, "schedules", "backfill", "daily", "--start", "soon", "--end", "later")
    assert bad.code == 2, bad
    assert "--start must be an ISO 8601 time" in bad.err
    backwards = await acli(
        url, "schedules", "backfill", "daily", "--start", "2030-01-02", "--end", "2030-01-01"
    )
    assert backwards.code == 2, backwards
    assert "before start" in backwards.err
    assert (await acli(url, "schedules", "pause", "nope")).code == 2
    deleted = await acli(url, "schedules", "delete", "daily")
    assert deleted.code == 0, deleted
    assert (await acli(url, "schedules", "delete", "daily")).code == 2
    assert (await acli(url, "schedules", "--json")).json() == []


async def test_schedules_http_api(url: str) -> None:
    """GET /schedules and /schedules/{id}; POST pause, resume, trigger, backfill (422 for
    bad times); DELETE; 404 for an unknown id; the paths are in the OpenAPI document."""
    async with admin(url) as engine:
        await engine.schedule("hourly", report, cron="0 * * * *", args=("x",))
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            listed = await http.get("/schedules")
            assert listed.status_code == 200, listed.text
            (schedule,) = listed.json()["schedules"]
            assert (schedule["id"], schedule["next_fire_at"]) == (
                "hourly",
                "2030-01-01T13:00:00+00:00",
            )
            page = await http.get("/schedules", headers={"Accept": "text/html"})
            assert page.status_code == 200
            assert "Schedules" in page.text
            paused = await http.post("/schedules/hourly/pause")
            assert (paused.status_code, paused.json()["paused"]) == (200, True)
            resumed = await http.post("/schedules/hourly/resume")
            assert (resumed.status_code, resumed.json()["paused"]) == (200, False)
            triggered = await http.post("/schedules/hourly/trigger")
            assert triggered.status_code == 201, triggered.text
            run_id = triggered.json()["id"]
            window = {"start": "2029-12-31T22:00:00Z", "end": "2029-12-31T23:00:00+00:00"}
            backfilled = await http.post("/schedules/hourly/backfill", json=window)
            assert backfilled.status_code == 201, backfilled.text
            assert [r["id"] for r in backfilled.json()["runs"]] == [
                tick_run_id("hourly", datetime(2029, 12, 31, hour, tzinfo=UTC)) for hour in (22, 23)
            ]
            one = await http.get("/schedules/hourly")
            assert one.status_code == 200
            assert run_id in {r["id"] for r in one.json()["last_runs"]}
            bad = await http.post("/schedules/hourly/backfill", json={"start": "soon"})
            assert bad.status_code == 422, bad.text
            backwards = {"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
            bad = await http.post("/schedules/hourly/backfill", json=backwards)
            assert (bad.status_code, "before start" in bad.json()["error"]) == (422, True)
            for method, path in (
                ("GET", "/schedules/nope"),
                ("POST", "/schedules/nope/pause"),
                ("POST", "/schedules/nope/trigger"),
                ("DELETE", "/schedules/nope"),
            ):
                missing = await http.request(method, path)
                assert missing.status_code == 404, (method, path, missing.text)
            deleted = await http.delete("/schedules/hourly")
            assert deleted.status_code == 200
            assert (await http.get("/schedules")).json() == {"schedules": []}
            document = (await http.get("/openapi.json")).json()
            for path in ("/schedules", "/schedules/{schedule_id}/backfill"):
                assert path in document["paths"]
