"""`perdure web` as a server (issue 11): its own address over IPv6, no token or credential
in its log or in stored webhook requests, no ERROR for a client that hangs up, the
sign-in link a browser follows, and connections that never finish their request.

`perdure web` runs as a real subprocess beside an in-test Engine (the worker of the
runs it serves) on one SQLite file; uvicorn's request-head deadline is tested
in-process, with a deadline short enough to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from helpers import ChildProcess, wait_until
from perdure import Engine, create_webhook, workflow
from perdure.http import create_app
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from perdure._cli._uvicorn import HeadTimeoutProtocol

pytestmark = pytest.mark.slow

DEADLINE = 15.0
"""Seconds to wait for a process or an answer before the test fails."""


@workflow(name="web-hardening-webhook")
async def webhook_headers() -> dict[str, str]:
    """The headers of the one request its webhook receives."""
    request = await create_webhook()
    return request.headers


def perdure_web(folder: Path, url: str, *args: str) -> ChildProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    env |= {"NO_COLOR": "1", "COLUMNS": "500"}
    argv = [sys.executable, "-m", "perdure", "web", "--port", "0", "--database-url", url]
    return ChildProcess("web", [*argv, *args], folder, env=env)


async def stop(web: ChildProcess) -> int:
    web.signal(signal.SIGTERM)
    return await web.exit_code(DEADLINE)


async def hang_up_mid_body(port: int, path: str, **headers: str) -> None:
    """Send a request that announces 1,000 bytes of body, send 10, and hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 1000"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"cut": "o')
    await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    del reader


def ipv6_loopback() -> bool:
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            return False
    return True


async def test_perdure_web_on_ipv6_answers_its_own_address(tmp_path: Path) -> None:
    """``perdure web --host ::1`` answers requests to the address it prints
    (``Host: [::1]:port``), and refuses another host with a JSON error."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    web = perdure_web(tmp_path, f"sqlite:///{tmp_path}/w.db", "--host", "::1")
    try:
        first = await web.line("perdure dashboard on ")
        found = re.search(r"http://\[::1\]:\d+", first)
        assert found is not None, first
        async with httpx.AsyncClient(base_url=found[0], timeout=DEADLINE) as http:
            listed = await http.get("/runs")
            page = await http.get("/", headers={"Accept": "text/html"})
            rebound = await http.get("/runs", headers={"Host": "evil.example"})
        code = await stop(web)
    finally:
        web.close()

    assert (200, 200) == (listed.status_code, page.status_code), listed.text
    assert 400 == rebound.status_code
    assert "evil.example" in rebound.json()["error"]
    assert 0 == code


async def live_webhook(engine: Engine) -> tuple[str, str]:
    """A run waiting on a webhook: its id and the webhook's token."""
    run = await engine.start(webhook_headers)
    hooks = await wait_until(engine, lambda: engine.store.list_hooks(run_id=run.id))
    return run.id, hooks[0].token


async def test_perdure_web_keeps_tokens_out_of_its_log(tmp_path: Path) -> None:
    """With -v and a made-up token: the access log shows neither the API token
    (``/login?token=``) nor a webhook's token; the printed sign-in link carries the
    token after '#', which browsers never send; and clients that hang up mid-body (at
    an unknown webhook, a live one, a hook's resume) leave no ERROR, no traceback."""
    url = f"sqlite:///{tmp_path}/w.db"
    async with Engine(url) as engine:
        run_id, webhook = await live_webhook(engine)
        web = perdure_web(tmp_path, url, "-v", "--host", "0.0.0.0")  # noqa: S104
        try:
            first = await web.line("perdure dashboard on ")
            link = await web.line("sign in at ")
            port = int(re.search(r":(\d+)/", first)[1])  # type: ignore[index]
            token = re.search(r"/login[#?]token=(\S+)", link)[1]  # type: ignore[index]
            bearer = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE
            ) as http:
                signed_in = await http.get("/login", params={"token": token})
                await hang_up_mid_body(port, "/webhooks/no-such-token")
                await hang_up_mid_body(port, f"/webhooks/{webhook}")
                await hang_up_mid_body(port, "/hooks/some-hook/resume", **bearer)
                delivered = await http.post(f"/webhooks/{webhook}", json={"paid": True})
                await (await engine.get_run(run_id)).result(timeout=DEADLINE)
                listed = await http.get("/runs", headers=bearer)
            await web.logged('"GET /runs HTTP/1.1" 200')
            code = await stop(web)
        finally:
            web.close()

    log = web.stderr()
    assert token not in log
    assert webhook not in log
    assert "/login?token=[redacted]" in log
    assert "/webhooks/[redacted]" in log
    assert "ERROR" not in log
    assert "Traceback" not in log
    assert "/login#token=" in link
    assert (303, 202, 200) == (signed_in.status_code, delivered.status_code, listed.status_code)
    assert 0 == code


async def test_perdure_web_stores_no_secret_header_of_a_webhook_request(tmp_path: Path) -> None:
    """``--secret-header NAME`` keeps that header out of stored webhook requests, as the
    credential headers (Authorization, Cookie, Proxy-Authorization) always are."""
    url = f"sqlite:///{tmp_path}/w.db"
    async with Engine(url) as engine:
        run_id, webhook = await live_webhook(engine)
        web = perdure_web(tmp_path, url, "--secret-header", "X-Api-Key")
        try:
            first = await web.line("perdure dashboard on ")
            address = re.search(r"http://127\.0\.0\.1:\d+", first)[0]  # type: ignore[index]
            async with httpx.AsyncClient(base_url=address, timeout=DEADLINE) as http:
                delivered = await http.post(
                    f"/webhooks/{webhook}",
                    json={"paid": True},
                    headers={
                        "X-Api-Key": "key-secret",
                        "Cookie": "perdure_session=cookie-secret",
                        "X-Signature": "kept",
                    },
                )
            headers = await (await engine.get_run(run_id)).result(timeout=DEADLINE)
            code = await stop(web)
        finally:
            web.close()

    assert 202 == delivered.status_code
    assert not {"x-api-key", "cookie"} & set(headers)
    assert "kept" == headers["x-signature"]
    assert 0 == code


# -- the sign-in link in a browser -----------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    app: Any, protocol: type[HeadTimeoutProtocol] | None = None
) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in this event loop; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    options: dict[str, Any] = {"http": protocol} if protocol is not None else {}
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=60,  # longer than any deadline tested here
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        listener.close()


async def test_the_printed_sign_in_link_signs_a_browser_in(tmp_path: Path) -> None:
    """``/login#token=...``, the link `perdure web` prints, signs Chromium in and lands on
    the runs list; the token leaves the address bar."""
    from test_dashboard import CHROMIUM, CHROMIUM_ARGS, _browser_or_skip  # noqa: PLC0415

    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    async with (
        Engine(f"sqlite:///{tmp_path}/b.db", clock=FakeClock()) as engine,
        serving(create_app(engine, token="link-token")) as port,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        base = f"http://127.0.0.1:{port}"
        await page.goto(f"{base}/login#token=link-token")
        await expect(page).to_have_url(f"{base}/", timeout=10_000)
        await expect(page.locator("#filters")).to_be_visible()
        await browser.close()


# -- connections that never finish their request ------------------------------------------


def short_deadline() -> type[HeadTimeoutProtocol]:
    from perdure._cli._uvicorn import HeadTimeoutProtocol  # noqa: PLC0415 (new in issue 11)

    class Short(HeadTimeoutProtocol):
        head_timeout = 0.2

    return Short


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(DEADLINE):
        return await reader.read()


async def test_a_request_head_that_never_ends_is_cut_off(tmp_path: Path) -> None:
    """A client that sends a request's head a header a while, never ending it, is cut
    off at the deadline: trickling bytes does not push it back (slowloris)."""
    async with (
        Engine(f"sqlite:///{tmp_path}/h.db", clock=FakeClock()) as engine,
        serving(create_app(engine), short_deadline()) as port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = asyncio.create_task(closed_by_server(reader))
        trickled = 0
        while not closed.done() and trickled < 200:  # 10 s of trickling at most
            with contextlib.suppress(ConnectionError):
                writer.write(f"X-Slow-{trickled}: 1\r\n".encode())
            trickled += 1
            await asyncio.wait({closed}, timeout=0.05)
        received = await closed
        writer.close()

    assert b"" == received  # closed without an answer
    assert 2 <= trickled < 100  # after the deadline (0.2 s), long before the end


async def test_an_idle_connection_waits_for_its_next_head_no_longer(tmp_path: Path) -> None:
    """After an answer, the next request's head has the same deadline (uvicorn's own
    keep-alive timeout is set long here); a prompt next request is served."""
    request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    async with (
        Engine(f"sqlite:///{tmp_path}/h.db", clock=FakeClock()) as engine,
        serving(create_app(engine), short_deadline()) as port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for _ in range(2):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
            await reader.readexactly(length)
            answers.append(head.split(b"\r\n", 1)[0])
        writer.write(b"GET /runs HTTP/1.1\r\n")  # and then nothing
        rest = await closed_by_server(reader)
        writer.close()

    assert [b"HTTP/1.1 200 OK"] * 2 == answers
    assert b"" == rest


async def test_a_body_that_never_ends_gets_a_408_and_the_connection_closes(
    tmp_path: Path,
) -> None:
    """Served by uvicorn, a body that stops arriving is answered 408 once the app's
    ``body_timeout`` passes, and the connection is closed."""
    async with (
        Engine(f"sqlite:///{tmp_path}/h.db", clock=FakeClock()) as engine,
        serving(create_app(engine, body_timeout=0.2), short_deadline()) as port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"workflow": '
        )
        received = await closed_by_server(reader)
        writer.close()

    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"did not arrive within 0.2 seconds" in received


def test_perdure_web_serves_with_limits_and_deadlines() -> None:
    """The uvicorn settings `perdure web` uses: the request-head deadline, an idle
    timeout, a head size limit, a connection limit, a shutdown deadline, and the filter
    that keeps tokens out of the access log."""
    import logging  # noqa: PLC0415

    from perdure._cli._uvicorn import HeadTimeoutProtocol, RedactTokens  # noqa: PLC0415
    from perdure._cli._web import server_config  # noqa: PLC0415

    config = server_config(create_app(Engine("memory://")), verbose=True)
    config.load()

    assert issubclass(config.http_protocol_class, HeadTimeoutProtocol)
    assert 10 == HeadTimeoutProtocol.head_timeout
    assert (5, 16_384, 1_000, 10) == (
        config.timeout_keep_alive,
        config.h11_max_incomplete_event_size,
        config.limit_concurrency,
        config.timeout_graceful_shutdown,
    )
    assert any(isinstance(f, RedactTokens) for f in logging.getLogger("uvicorn.access").filters)
