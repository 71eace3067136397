"""Golden histories: logs recorded by earlier code still replay on today's code.

Each file in ``tests/golden/`` is a run's whole log, recorded once by
``tests/golden/record.py`` and never rewritten. Replaying it (every prefix, as a run
in flight at that point, and the whole log, which must end as the run did) is what a
worker does with a run in flight after an upgrade. A failure here means a change
would break such runs: change the code, not the file (see ``record.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import perdure
from golden.check import FOLDER, GoldenDivergence, check, golden_files, load
from golden.workflows import SCENARIOS, double, square
from perdure._log import parse
from perdure.testing import FakeClock

FILES = golden_files()


def test_every_scenario_has_its_golden_file() -> None:
    """Each scenario was recorded, and each file belongs to a scenario."""
    assert sorted(SCENARIOS) == sorted(path.stem for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_a_golden_history_replays_on_todays_code(path: Path) -> None:
    """Every prefix of the log replays without divergence, and the whole log ends as the
    recorded run ended (same output, same error, or cancelled)."""
    check(load(path))


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_every_event_of_a_golden_history_parses(path: Path) -> None:
    """Today's parsers read every event that earlier code wrote."""
    for event in load(path).events:
        parse(event)


def test_the_golden_histories_cover_every_kind_of_event() -> None:
    """Together the files hold an event of every type, so each type's shape is pinned."""
    seen = {event.type for path in FILES for event in load(path).events}

    assert set(perdure.EventType) == seen


# -- the check can fail ----------------------------------------------------------------


@perdure.workflow(name="golden-test-swapped-gather")
async def swapped_gather(numbers: list[int]) -> list[int]:
    """golden-gather with its first two calls swapped: what a careless edit does."""
    import asyncio  # noqa: PLC0415

    return list(await asyncio.gather(square(numbers[1]), double(numbers[0]), double(numbers[2])))


@perdure.workflow(name="golden-test-other-output")
async def other_output(numbers: list[int]) -> list[int]:
    """golden-gather making the same calls, but returning something else."""
    import asyncio  # noqa: PLC0415

    found = await asyncio.gather(double(numbers[0]), square(numbers[1]), double(numbers[2]))
    return sorted(found)


def test_a_changed_workflow_is_a_readable_divergence() -> None:
    """Replaying a golden file with a workflow whose calls changed fails, naming the file,
    the call, its position and what the log holds there."""
    golden = load(FOLDER / "gather.json")

    with pytest.raises(GoldenDivergence) as caught:
        check(golden, swapped_gather.__perdure_workflow__)

    message = str(caught.value)
    assert message.startswith("gather.json: replaying the log up to event #")
    assert "NonDeterminismError" in message
    assert "durable call #1 is step 'golden.square' (golden.square#1)" in message
    assert "the log holds step 'golden.double' (golden.double#1, event #3)" in message


def test_a_changed_outcome_is_a_readable_divergence() -> None:
    """A workflow that makes the same calls but returns another value fails too."""
    golden = load(FOLDER / "gather.json")

    with pytest.raises(GoldenDivergence, match=r"gather\.json: the recorded run ended completed"):
        check(golden, other_output.__perdure_workflow__)


def test_a_changed_event_in_a_golden_file_is_caught(tmp_path: Path) -> None:
    """A log whose step name was changed (as a renamed step would log it) does not replay."""
    raw = json.loads((FOLDER / "steps_with_retries.json").read_text())
    for event in raw["events"]:
        if event["correlation_id"] == "golden.double#1":
            event["correlation_id"] = "golden.twice#1"
    changed = tmp_path / "renamed.json"
    changed.write_text(json.dumps(raw))

    with pytest.raises(GoldenDivergence, match=r"renamed\.json: .*golden\.twice#1"):
        check(load(changed))


def test_the_recorder_refuses_to_overwrite_a_golden_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """record.py --new NAME on a name that has a file exits 2 and writes nothing."""
    from golden import record  # noqa: PLC0415 (its import sets sys.path, harmless here)

    before = (FOLDER / "gather.json").read_bytes()

    assert 2 == record.main(["--new", "gather"])

    assert before == (FOLDER / "gather.json").read_bytes()
    assert "never regenerated" in capsys.readouterr().err


def test_recording_uses_the_fake_clock() -> None:
    """The recorder's runs start at FakeClock's fixed time: the files do not depend on when
    they were made."""
    starts = {load(path).events[0].created_at for path in FILES}

    assert {FakeClock().now()} == starts
