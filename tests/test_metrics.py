"""OpenTelemetry metrics (issue 17): exact counts after a known mix of runs.

OpenTelemetry's global meter provider is installed here with an in-memory reader, as
an application would install its own; it stays for the rest of the session, so each
test compares the readings before and after what it did.
"""

from __future__ import annotations

from collections import Counter

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import perdure
from conftest import EngineFactory
from helpers import eventually, run_fresh_python, wait_for_hook, wait_until
from perdure import HookNotFoundError, RetryPolicy, define_hook, step, workflow
from perdure._hooks import WEBHOOK
from perdure._metrics import recorder
from perdure._records import NewRun
from perdure.testing import FakeClock

_reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))

metered_hook = define_hook(dict, name="metered-go")


@step(name="metered-step")
async def quick(n: int) -> int:
    return n + 1


@step(name="metered-fails", retry=RetryPolicy(max_retries=2, initial_delay=1))
async def always_fails(n: int) -> int:
    raise ValueError(f"no {n}")


@workflow(name="metered-ok")
async def ok(n: int) -> int:
    return await quick(n)


@workflow(name="metered-flaky")
async def flaky(n: int) -> int:
    return await always_fails(n)


@workflow(name="metered-waits")
async def waits(token: str) -> str:
    payload = await metered_hook.create(token=token)
    return str(payload)


@workflow(name="metered-sleeps")
async def sleeps() -> str:
    await perdure.sleep("1h")
    return "woke"


Key = tuple[str, frozenset[tuple[str, object]]]


def readings() -> Counter[Key]:
    """Each counter's sum and each histogram's count, by metric name and attributes."""
    found: Counter[Key] = Counter()
    data = _reader.get_metrics_data()
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = frozenset((point.attributes or {}).items())
                    found[metric.name, attributes] += _value(point)
    return found


def key(name: str, **attributes: str) -> Key:
    return name, frozenset((f"perdure.{k}", v) for k, v in attributes.items())


async def test_counters_and_histograms_after_a_known_mix_of_runs(
    make_engine: EngineFactory, store_kind: str
) -> None:
    """Two runs completed, one failed after two retries, one cancelled, one resumed by a
    hook and one woken by its timer: every counter and histogram moves by exactly that."""
    assert recorder() is not None
    before = readings()
    async with make_engine() as engine:
        for n in (1, 2):
            assert await (await engine.start(ok, n)).result(timeout=10) == n + 1
        failing = await engine.start(flaky, 1)
        with pytest.raises(perdure.WorkflowFailed):
            await failing.result(timeout=10)
        cancelled = await engine.start(waits, "metered-never")
        await wait_for_hook(engine, "metered-never")
        await cancelled.cancel()
        with pytest.raises(perdure.WorkflowCancelled):
            await cancelled.result(timeout=10)
        resumed = await engine.start(waits, "metered-token")
        await wait_for_hook(engine, "metered-token")
        await metered_hook.resume("metered-token", {"ok": True})
        with pytest.raises(HookNotFoundError):
            await metered_hook.resume("metered-nobody", {"ok": True})
        with pytest.raises(HookNotFoundError):  # as a webhook request for no webhook
            await engine.resume_hook("metered-no-webhook", {"body": ""}, name=WEBHOOK)
        assert await resumed.result(timeout=10) == "{'ok': True}"
        assert await (await engine.start(sleeps)).result(timeout=10) == "woke"
    moved = readings() - before
    expected = {
        key("perdure.runs.started", workflow="metered-ok"): 2,
        key("perdure.runs.started", workflow="metered-flaky"): 1,
        key("perdure.runs.started", workflow="metered-waits"): 2,
        key("perdure.runs.started", workflow="metered-sleeps"): 1,
        key("perdure.runs.completed", workflow="metered-ok"): 2,
        key("perdure.runs.completed", workflow="metered-waits"): 1,
        key("perdure.runs.completed", workflow="metered-sleeps"): 1,
        key("perdure.runs.failed", workflow="metered-flaky"): 1,
        key("perdure.runs.cancelled", workflow="metered-waits"): 1,
        key("perdure.runs.duration", workflow="metered-ok", outcome="completed"): 2,
        key("perdure.runs.duration", workflow="metered-flaky", outcome="failed"): 1,
        key("perdure.runs.duration", workflow="metered-waits", outcome="cancelled"): 1,
        key("perdure.runs.duration", workflow="metered-waits", outcome="completed"): 1,
        key("perdure.runs.duration", workflow="metered-sleeps", outcome="completed"): 1,
        key("perdure.steps.attempts", step="metered-step", outcome="succeeded"): 2,
        key("perdure.steps.attempts", step="metered-fails", outcome="failed"): 3,
        key("perdure.steps.attempt.duration", step="metered-step", outcome="succeeded"): 2,
        key("perdure.steps.attempt.duration", step="metered-fails", outcome="failed"): 3,
        key("perdure.steps.retries", step="metered-fails"): 2,
        key("perdure.steps.failures", step="metered-fails"): 1,
        key("perdure.wakeup.latency", workflow="metered-ok", wakeup="start"): 2,
        key("perdure.wakeup.latency", workflow="metered-flaky", wakeup="start"): 1,
        key("perdure.wakeup.latency", workflow="metered-waits", wakeup="start"): 2,
        key("perdure.wakeup.latency", workflow="metered-sleeps", wakeup="start"): 1,
        key("perdure.wakeup.latency", workflow="metered-waits", wakeup="hook"): 1,
        key("perdure.wakeup.latency", workflow="metered-sleeps", wakeup="timer"): 1,
        key("perdure.hook.resumes", outcome="resumed"): 1,
        key("perdure.hook.resumes", outcome="not_found"): 1,
        key("perdure.webhook.requests", outcome="not_found"): 1,
    }
    perdure_only = {
        k: v
        for k, v in moved.items()
        if k[0].startswith(
            ("perdure.run", "perdure.step", "perdure.wakeup", "perdure.hook", "perdure.webhook")
        )
        and k[0] not in {"perdure.runs.pending", "perdure.runs.blocked.now"}  # gauges
    }
    assert perdure_only == expected
    commits = sum(v for (name, _), v in moved.items() if name == "perdure.store.commits")
    timed = sum(v for (name, _), v in moved.items() if name == "perdure.store.commit.duration")
    if store_kind == "memory":
        assert commits == timed == 0
    else:
        assert commits > 0
        assert timed == commits
        stores = {dict(attrs)["perdure.store"] for (name, attrs) in moved if "commit" in name}
        assert stores == {store_kind}


async def test_gauges_count_held_sleeping_and_waiting_runs(make_engine: EngineFactory) -> None:
    """A run on a timer and one on a hook, both held: the gauges read 2 held, 1 each."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        sleeper = await engine.start(sleeps)
        waiter = await engine.start(waits, "metered-gauge")
        await wait_for_hook(engine, "metered-gauge")

        async def gauges() -> dict[str, int] | None:
            found = _gauges()
            return found if found.get("perdure.worker.runs.sleeping") == 1 else None

        found = await wait_until(engine, gauges)
        assert found == {
            "perdure.worker.runs.held": 2,
            "perdure.worker.runs.sleeping": 1,
            "perdure.worker.runs.waiting": 1,
        }
        await sleeper.cancel()
        await waiter.cancel()


def _gauges() -> dict[str, int]:
    found: dict[str, int] = {}
    data = _reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name.startswith("perdure.worker."):
                    found[metric.name] = sum(_value(p) for p in metric.data.data_points)
    return found


def _value(point: object) -> int:
    """A counter's or gauge's value, a histogram's count."""
    if isinstance(point, HistogramDataPoint):
        return int(point.count)
    return int(getattr(point, "value", 0))


async def test_the_backlog_gauges_read_the_store(make_engine: EngineFactory) -> None:
    """A run no worker here defines stays pending: the worker's next look counts it."""
    async with make_engine() as engine:
        await engine.store.create_run(
            NewRun("metered-orphan-1", "metered-nobody-runs-this", {"args": []}),
            engine.clock.now(),
        )

        async def pending() -> int | None:
            data = _reader.get_metrics_data()
            if data is None:  # nothing recorded in this process yet
                return None
            for resource in data.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name != "perdure.runs.pending":
                            continue
                        for point in metric.data.data_points:
                            attributes = dict(point.attributes or {})
                            if attributes == {"perdure.workflow": "metered-nobody-runs-this"}:
                                return _value(point)
            return None

        assert await eventually(pending, "the pending gauge", 10, every=0.05) == 1


def test_no_meter_provider_no_recorder() -> None:
    """Without a meter provider the call sites get None; one installed later is used."""
    printed = run_fresh_python(
        "from perdure._metrics import recorder\n"
        "print(recorder() is None)\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "metrics.set_meter_provider(MeterProvider())\n"
        "print(recorder() is None)\n"
    )
    assert printed.split() == ["True", "False"]
