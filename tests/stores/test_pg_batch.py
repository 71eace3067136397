"""The PostgreSQL store's batcher on its own: who goes in which call, and who gets what.

No database here: ``send`` is a function of the test's, which records each call, is
answered a loop turn later, and with ``hold`` waits for the test to let it finish.
Ordering relies only on asyncio running callbacks in the order they were scheduled.
"""

from __future__ import annotations

import asyncio

import pytest

from perdure.stores.postgres._batch import Batcher, BatchStatistics


async def round_trip() -> None:
    """Be answered in the next loop turn, as a server's answer comes in a later one."""
    answered = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(answered.set_result, None)
    await answered


class Server:
    """A ``send`` that records its calls; with ``hold``, each waits for `release`."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.answers: dict[str, str | BaseException] = {}
        self.tasks: list[asyncio.Task[object] | None] = []

    async def send(self, items: list[str]) -> list[str | BaseException]:
        self.calls.append(items)
        self.tasks.append(asyncio.current_task())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.entered.set()
        try:
            await round_trip()
            await self.release.wait()
        finally:
            self.running -= 1
        return [self.answers.get(item, item.upper()) for item in items]


async def test_a_lone_item_goes_at_once_from_its_callers_task() -> None:
    """With nothing under way, an item is sent by its caller, without a task or a wait."""
    server = Server()
    batcher = Batcher(server.send, in_flight=4, limit=100)
    assert await batcher.submit("a") == "A"
    assert server.calls == [["a"]]
    assert server.tasks == [asyncio.current_task()]


async def test_items_submitted_in_one_loop_turn_go_in_one_call() -> None:
    """Callers that submit in the same turn as one under way share one call, and each
    gets its own answer."""
    server = Server()
    batcher = Batcher(server.send, in_flight=4, limit=100)
    results = await asyncio.gather(*(batcher.submit(item) for item in "abcde"))
    assert results == list("ABCDE")
    assert server.calls == [["a"], list("bcde")]
    assert batcher.statistics() == BatchStatistics(submitted=5, batches=2, largest_batch=4)


async def test_what_arrives_while_every_call_is_busy_waits_and_goes_together() -> None:
    """No more calls run at once than allowed; items arriving meanwhile go in the next."""
    server = Server(hold=True)
    batcher = Batcher(server.send, in_flight=1, limit=100)
    first = asyncio.create_task(batcher.submit("a"))
    await server.entered.wait()
    rest = [asyncio.create_task(batcher.submit(item)) for item in "bcd"]
    asyncio.get_running_loop().call_soon(server.release.set)  # after b, c and d submitted
    assert await asyncio.gather(first, *rest) == list("ABCD")
    assert server.calls == [["a"], ["b", "c", "d"]]
    assert server.most_running == 1


async def test_several_calls_may_run_at_once() -> None:
    """With room for two calls, a second batch goes while the first is under way."""
    server = Server(hold=True)
    batcher = Batcher(server.send, in_flight=2, limit=100)
    first = asyncio.create_task(batcher.submit("a"))
    await server.entered.wait()
    server.entered.clear()
    second = asyncio.create_task(batcher.submit("b"))
    await server.entered.wait()
    assert server.calls == [["a"], ["b"]]
    assert server.most_running == 2
    server.release.set()
    assert list(await asyncio.gather(first, second)) == ["A", "B"]


async def test_a_batch_takes_at_most_limit_items() -> None:
    """Items beyond the limit go in further calls, in the order they were submitted."""
    server = Server()
    batcher = Batcher(server.send, in_flight=10, limit=2)
    assert await asyncio.gather(*(batcher.submit(item) for item in "abcde")) == list("ABCDE")
    assert server.calls == [["a"], ["b", "c"], ["d", "e"]]
    assert batcher.statistics().largest_batch == 2


async def test_an_items_own_error_goes_to_its_caller_alone() -> None:
    """An exception answered for one item is raised by its caller; the others get results."""
    server = Server()
    server.answers["b"] = LookupError("no b")
    batcher = Batcher(server.send, in_flight=1, limit=100)
    results = await asyncio.gather(
        *(batcher.submit(item) for item in "abc"), return_exceptions=True
    )
    assert results[0] == "A"
    assert isinstance(results[1], LookupError)
    assert results[2] == "C"


async def test_an_error_raised_by_send_goes_to_every_caller_of_the_batch() -> None:
    """When the call itself fails, everyone in it gets the error, each an instance of
    its own (one instance raised by many tasks would gather all their tracebacks); the
    next batch is fine."""
    calls = 0

    async def send(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        await round_trip()
        if calls == 2:
            raise ConnectionResetError("gone")
        return items

    batcher = Batcher(send, in_flight=1, limit=100)
    results = await asyncio.gather(
        *(batcher.submit(item) for item in "abcd"), return_exceptions=True
    )
    assert results[0] == "a"  # alone, in the first call
    assert [(type(result), str(result)) for result in results[1:]] == [
        (ConnectionResetError, "gone")
    ] * 3
    assert len({id(result) for result in results[1:]}) == 3  # each raises its own
    assert await batcher.submit("e") == "e"


async def test_a_caller_cancelled_before_its_batch_goes_is_left_out() -> None:
    """An item whose caller gave up while it waited is not sent."""
    server = Server(hold=True)
    batcher = Batcher(server.send, in_flight=1, limit=100)
    first = asyncio.create_task(batcher.submit("a"))
    await server.entered.wait()
    b = asyncio.create_task(batcher.submit("b"))
    c = asyncio.create_task(batcher.submit("c"))
    loop = asyncio.get_running_loop()
    loop.call_soon(b.cancel)  # once b waits for its answer
    loop.call_soon(server.release.set)
    assert await first == "A"
    assert await c == "C"
    with pytest.raises(asyncio.CancelledError):
        await b
    assert server.calls == [["a"], ["c"]]


async def test_wait_idle_returns_once_every_item_is_answered() -> None:
    """Closing waits for the calls under way and for what is still queued."""
    server = Server(hold=True)
    batcher = Batcher(server.send, in_flight=1, limit=1)
    callers = [asyncio.create_task(batcher.submit(item)) for item in "abc"]
    await server.entered.wait()
    idle = asyncio.create_task(batcher.wait_idle())
    asyncio.get_running_loop().call_soon(server.release.set)
    await idle
    assert server.calls == [["a"], ["b"], ["c"]]
    assert server.running == 0
    assert await asyncio.gather(*callers) == list("ABC")


def test_in_flight_and_limit_must_be_positive() -> None:
    """A batcher that could never send is refused."""

    async def send(items: list[str]) -> list[str]:
        return items

    with pytest.raises(ValueError, match="at least 1"):
        Batcher(send, in_flight=0, limit=1)
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(send, in_flight=1, limit=0)
