"""The web dashboard: its pages, files and sign-in over HTTP, `perdure web`, and a real browser.

The browser test drives Debian's Chromium (/usr/bin/chromium) with Playwright against
the app served by uvicorn on 127.0.0.1, with an Engine on a SQLite file running the
workflows of tests/http/dashboard_workflows.py. Without Chromium or Playwright it is skipped
with a message, except in CI ($CI set), where it fails. With PERDURE_SCREENSHOTS=1 it
also writes the run page's screenshot to docs/dashboard-run.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi_app import build_app

import dashboard_workflows as wf
from helpers import wait_for_hook
from perdure import Engine, RunStatus, WorkflowFailed
from perdure.http import create_app
from perdure.http._dashboard import SESSION_COOKIE
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import ConsoleMessage, Dialog, Error

    from perdure import Run

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "src" / "perdure" / "web" / "pages"
STATIC = ROOT / "src" / "perdure" / "web" / "static"
WORKFLOWS = str(Path(__file__).resolve().parent / "dashboard_workflows.py")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN = "dashboard-test-token"
DEADLINE = 15.0
"""Seconds to wait for a command or a condition before the test fails."""
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
DASHBOARD = {"X-Perdure-Dashboard": "1"}


def client_for(app: Any, base_url: str = "http://localhost") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An Engine on a SQLite file, its fake clock jumping over sleeps and retry delays."""
    async with Engine(f"sqlite:///{tmp_path}/d.db", clock=FakeClock()) as running:
        yield running


async def waiting_run(engine: Engine, order: str = "A-1") -> Run[Any]:
    """A run of review_order that waits for its review."""
    run = await engine.start(wf.review_order, order, run_id=f"order-{order}")
    await wait_for_hook(engine, f"review-{order}", timeout=DEADLINE)
    return run


# -- pages and files ----------------------------------------------------------------------


async def test_the_pages_are_html_with_a_strict_content_security_policy(engine: Engine) -> None:
    """/ and, for a browser, /runs/{id} are HTML pages that allow only this server's files."""
    async with client_for(create_app(engine)) as http:
        runs = await http.get("/", headers=HTML)
        run = await http.get("/runs/some-run", headers=HTML)
        as_json = await http.get("/runs/some-run")

    for page in (runs, run):
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script>" not in page.text  # no inline script: the policy forbids it
    assert 'src="/static/runs.js"' in runs.text
    assert 'data-run-id="some-run"' in run.text
    assert (404, "application/json") == (
        as_json.status_code,
        as_json.headers["content-type"],
    )
    assert "Accept" in as_json.headers["vary"]


async def test_a_run_id_is_escaped_in_its_page(engine: Engine) -> None:
    """A run id with markup in it lands in the page as text, not as HTML."""
    async with client_for(create_app(engine)) as http:
        page = await http.get('/runs/"><img src=x onerror=alert(1)>', headers=HTML)

    assert page.status_code == 200
    assert "<img src=x" not in page.text
    assert 'data-run-id="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in page.text


async def test_every_file_the_pages_and_scripts_name_is_served(engine: Engine) -> None:
    """Each /static/ file a page or script refers to is served, with its media type."""
    names: set[str] = set()
    for page in PAGES.glob("*.html"):
        names |= set(re.findall(r"\{\{base\}\}/static/([\w.-]+)", page.read_text()))
    for script in STATIC.glob("*.js"):
        names |= set(re.findall(r'from "\./([\w.-]+)"', script.read_text()))
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

    async with client_for(create_app(engine)) as http:
        served = {name: await http.get(f"/static/{name}") for name in sorted(names)}
        missing = await http.get("/static/nothing.js")
        outside = await http.get("/static/..%2F__init__.py")

    assert {"dashboard.css", "dashboard.js", "runs.js", "run.js", "favicon.svg"} <= names
    for name, response in served.items():
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(types[Path(name).suffix]), name
        assert response.content == (STATIC / name).read_bytes()
    assert (404, 404) == (missing.status_code, outside.status_code)


async def test_a_file_unchanged_since_the_last_visit_is_304(engine: Engine) -> None:
    """A request with the file's entity tag gets 304 and no body."""
    async with client_for(create_app(engine)) as http:
        first = await http.get("/static/dashboard.css")
        again = await http.get(
            "/static/dashboard.css", headers={"If-None-Match": first.headers["etag"]}
        )
        stale = await http.get("/static/dashboard.css", headers={"If-None-Match": '"old"'})

    assert (200, 304, 200) == (first.status_code, again.status_code, stale.status_code)
    assert again.content == b""


async def test_without_the_dashboard_the_app_is_the_api_alone(engine: Engine) -> None:
    """create_app(dashboard=False) serves no pages: /runs/{id} is JSON for browsers too."""
    async with client_for(create_app(engine, dashboard=False)) as http:
        root = await http.get("/", headers=HTML)
        run = await http.get("/runs/x", headers=HTML)
        static = await http.get("/static/run.js")

    assert (404, 404, 404) == (root.status_code, run.status_code, static.status_code)
    assert run.json() == {"error": "no run with id 'x'"}


async def test_mounted_under_a_prefix_the_pages_link_inside_it(tmp_path: Path) -> None:
    """In examples/fastapi_app.py (mounted at /perdure), links and files carry the prefix."""
    engine = Engine(f"sqlite:///{tmp_path}/t.db", clock=FakeClock())
    async with engine, client_for(build_app(engine)) as http:
        page = await http.get("/perdure/", headers=HTML)
        script = await http.get("/perdure/static/run.js")
        run = await http.get("/perdure/runs/r1", headers=HTML)

    assert page.status_code == 200
    assert 'data-base="/perdure"' in page.text
    assert 'href="/perdure/static/dashboard.css"' in page.text
    assert script.status_code == 200
    assert 'data-run-id="r1"' in run.text


# -- signing in ----------------------------------------------------------------------------


async def test_with_a_token_pages_send_the_browser_to_sign_in(engine: Engine) -> None:
    """Not signed in, a page redirects to /login, which keeps where the browser was going."""
    async with client_for(create_app(engine, token=TOKEN)) as http:
        root = await http.get("/", headers=HTML)
        run = await http.get("/runs/r%201?x=1", headers=HTML)
        form = await http.get("/login?next=/runs/r1")

    assert (303, "/login?next=/") == (root.status_code, root.headers["location"])
    assert run.headers["location"] == "/login?next=/runs/r%201%3Fx%3D1"
    assert form.status_code == 200
    assert 'type="password"' in form.text
    assert 'value="/runs/r1"' in form.text
    assert TOKEN not in form.text


async def test_signing_in_sets_a_session_cookie_that_is_not_the_token(engine: Engine) -> None:
    """The right token (form or ?token=) sets an HttpOnly cookie and redirects without it."""
    async with client_for(create_app(engine, token=TOKEN)) as http:
        by_form = await http.post("/login", data={"token": TOKEN, "next": "/runs/r1"})
        http.cookies.clear()
        by_link = await http.get(f"/login?token={TOKEN}")
        page = await http.get("/", headers=HTML)

    for response in (by_form, by_link):
        assert response.status_code == 303
        assert TOKEN not in response.headers["location"]
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert TOKEN not in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/" in cookie
    assert by_form.headers["location"] == "/runs/r1"
    assert by_link.headers["location"] == "/"
    assert page.status_code == 200


async def test_a_wrong_token_is_refused_and_sets_nothing(engine: Engine) -> None:
    """A wrong token gets the form again with a 403 and no cookie."""
    async with client_for(create_app(engine, token=TOKEN)) as http:
        wrong = await http.post("/login", data={"token": "guess"})
        wrong_link = await http.get("/login?token=guess")

    for response in (wrong, wrong_link):
        assert response.status_code == 403
        assert "set-cookie" not in response.headers
        assert "not the API token" in response.text


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/a\r\nb", ""]
)
async def test_signing_in_never_redirects_to_another_site(engine: Engine, target: str) -> None:
    """A `next` that is not a path inside the app sends the browser to the runs list."""
    async with client_for(create_app(engine, token=TOKEN)) as http:
        response = await http.post("/login", data={"token": TOKEN, "next": target})

    assert response.headers["location"] == "/"


async def test_the_session_cookie_opens_the_api_only_with_the_dashboard_header(
    engine: Engine,
) -> None:
    """The cookie counts only with X-Perdure-Dashboard (no CSRF); a stale cookie is a 401."""
    run = await waiting_run(engine)
    app = create_app(engine, token=TOKEN)
    async with client_for(app) as http:
        await http.get(f"/login?token={TOKEN}")
        listed = await http.get("/runs", headers=DASHBOARD)
        forged = await http.post(f"/runs/{run.id}/cancel")
        http.cookies.set(SESSION_COOKIE, "0" * 64)
        stale = await http.get("/runs", headers=DASHBOARD)

    assert listed.status_code == 200
    assert [run.id] == [r["id"] for r in listed.json()["runs"]]
    assert forged.status_code == 403
    assert "X-Perdure-Dashboard" in forged.json()["error"]
    assert not (await run.refresh()).cancel_requested
    assert stale.status_code == 401
    assert "sign in again" in stale.json()["error"]


async def test_signing_out_forgets_the_session(engine: Engine) -> None:
    """POST /logout deletes the cookie and goes back to the sign-in form."""
    async with client_for(create_app(engine, token=TOKEN)) as http:
        await http.get(f"/login?token={TOKEN}")
        out = await http.post("/logout")
        page = await http.get("/", headers=HTML)

    assert (303, "/login") == (out.status_code, out.headers["location"])
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert page.status_code == 303


async def test_without_a_token_there_is_nothing_to_sign_in_to(engine: Engine) -> None:
    """/login redirects to the runs list when the app has no token."""
    async with client_for(create_app(engine)) as http:
        response = await http.get("/login?token=anything")

    assert (303, "/") == (response.status_code, response.headers["location"])
    assert "set-cookie" not in response.headers


async def test_an_open_api_refuses_changes_from_other_sites(engine: Engine) -> None:
    """Without a token, a browser's cross-site POST is a 403 and changes nothing."""
    run = await waiting_run(engine)
    token = f"review-{run.id.removeprefix('order-')}"
    payload = {"decision": "approved"}
    async with client_for(create_app(engine)) as http:
        cross_site = await http.post(
            f"/runs/{run.id}/cancel", headers={"Sec-Fetch-Site": "cross-site"}
        )
        other_origin = await http.post(
            f"/hooks/{token}/resume", json=payload, headers={"Origin": "http://evil.example"}
        )
        null_origin = await http.post("/runs", json={"workflow": "x"}, headers={"Origin": "null"})
        reading = await http.get("/runs", headers={"Sec-Fetch-Site": "cross-site"})
        unchanged = await engine.store.get_run(run.id)
        hook = await engine.store.get_hook(token)
        same_origin = await http.post(
            f"/hooks/{token}/resume",
            json=payload,
            headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
        )

    assert (403, 403, 403) == (
        cross_site.status_code,
        other_origin.status_code,
        null_origin.status_code,
    )
    assert "cross-site" in cross_site.json()["error"]
    assert "evil.example" in other_origin.json()["error"]
    assert reading.status_code == 200  # reading is harmless: the browser hides the answer
    assert unchanged is not None
    assert not unchanged.cancel_requested
    assert hook is not None
    assert same_origin.status_code == 202  # the browser says it is this site's own page


# -- perdure web ---------------------------------------------------------------------------


def _web(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    environ |= {"NO_COLOR": "1", "COLUMNS": "500"} | (env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "perdure", "web", "--port", "0", "--database-url", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=DEADLINE)
    return proc.returncode, out, err


def test_perdure_web_serves_the_dashboard_and_the_api_until_sigterm(tmp_path: Path) -> None:
    """`perdure web --port 0` prints its address, serves pages and the API, exits 0 on SIGTERM."""
    proc = _web(f"sqlite:///{tmp_path}/w.db", "--module", WORKFLOWS)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        address = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert address is not None, first
        with httpx.Client(base_url=address[0], timeout=DEADLINE) as http:
            page = http.get("/", headers=HTML)
            started = http.post("/runs", json={"workflow": "review-order", "args": ["W-1"]})
            listed = http.get("/runs")
            rebound = http.get("/runs", headers={"Host": "evil.example"})
    finally:
        code, out, err = _stop(proc)

    assert "review-order" in first  # the --module's workflows are known
    assert page.status_code == 200
    assert 'src="/static/runs.js"' in page.text
    assert started.status_code == 201
    assert [started.json()["id"]] == [r["id"] for r in listed.json()["runs"]]
    assert rebound.status_code == 400  # open on loopback: other Host names are refused
    assert (0, "") == (code, err)
    assert "stopped" in out


def test_perdure_web_on_another_address_makes_up_a_token(tmp_path: Path) -> None:
    """Off loopback without $PERDURE_API_TOKEN, the API is closed and a sign-in link printed."""
    proc = _web(f"sqlite:///{tmp_path}/w.db", "--host", "0.0.0.0")  # noqa: S104
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        port = re.search(r":(\d+)/", first)
        link = re.search(r"/login#token=(\S+)", second)
        assert port is not None, first
        assert link is not None, second
        with httpx.Client(base_url=f"http://127.0.0.1:{port[1]}", timeout=DEADLINE) as http:
            refused = http.get("/runs")
            allowed = http.get("/runs", headers={"Authorization": f"Bearer {link[1]}"})
            signed_in = http.get(f"/login?token={link[1]}")
    finally:
        code, _, _ = _stop(proc)

    assert (401, 200, 303) == (refused.status_code, allowed.status_code, signed_in.status_code)
    assert code == 0


def test_perdure_web_says_when_the_port_is_taken(tmp_path: Path) -> None:
    """A port in use is a one-line error and exit 1, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "perdure", "web", "--port", str(port)]
        done = subprocess.run(
            [*argv, "--database-url", f"sqlite:///{tmp_path}/w.db"],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )

    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr


# -- the browser ---------------------------------------------------------------------------


def _browser_or_skip() -> None:
    """Skip (or, in CI, fail) unless Playwright and Debian's Chromium are installed."""
    problem = None
    if importlib.util.find_spec("playwright") is None:
        problem = "Python Playwright is not installed (pip install -e '.[dev]')"
    elif not CHROMIUM.is_file():
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test cannot run in CI: {problem}")
    pytest.skip(f"no browser test: {problem}")


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in this event loop; its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        listener.close()


async def test_the_dashboard_in_a_browser(tmp_path: Path) -> None:
    """In Chromium: sign in, find the run, see its timeline, resume its hook, rerun, cancel,
    fork."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs the answers the test provokes: a refused payload, an unknown run.
        expected = re.search(r"responded with a status of (422|404)", message.text)
        if message.type in ("error", "warning") and not expected:
            problems.append(f"console {message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        problems.append(f"page error: {error}")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        failed = await engine.start(wf.charge_order, "B-7", run_id="charge-B-7")
        run = await engine.start(wf.review_order, "A-1001", run_id="order-A-1001")
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("dialog", accept)

        # Signing in with ?token= lands on the runs list, the token gone from the address.
        await page.goto(f"{base}/login?token={TOKEN}")
        await expect(page).to_have_url(f"{base}/")
        row = page.locator("tr", has=page.get_by_role("link", name="order-A-1001"))
        await expect(row).to_be_visible()
        await expect(row.locator(".badge")).to_have_text(re.compile("pending|running"))
        await expect(row).to_contain_text("review-order")

        # The filters: failed runs only, then every run again.
        await page.get_by_label("Status").select_option("failed")
        await expect(page.locator("tr", has_text="charge-B-7").locator(".badge")).to_have_text(
            "failed"
        )
        await expect(row).to_have_count(0)
        await page.get_by_label("Status").select_option("")
        await page.get_by_label("Workflow").select_option("review-order")
        await expect(row).to_be_visible()
        await expect(page.locator("tr", has_text="charge-B-7")).to_have_count(0)

        # The run's page: its steps on the timeline, then the hook's form.
        await row.get_by_role("link").click()
        await expect(page).to_have_url(f"{base}/runs/order-A-1001")
        timeline = page.locator("#timeline")
        for call in ("fetch_order#1", "reserve_stock#1", "check_fraud#1", "quote_shipping#1"):
            await expect(timeline.locator(f'[data-call="{call}"]')).to_be_visible()
        retried = timeline.locator('[data-call="reserve_stock#1"]')
        await expect(retried).to_contain_text("2 attempts")
        await expect(retried.locator(".bar")).to_have_count(2)
        form = page.locator('form[data-token="review-A-1001"]')
        await expect(form).to_be_visible()
        await expect(timeline.locator('[data-call="sleep#1"]')).to_contain_text("completed")

        # Bad payloads are refused with a message; nothing reaches the run.
        payload = form.get_by_label("Payload (JSON)")
        await payload.fill("{not json")
        await form.get_by_role("button", name="Resume").click()
        await expect(form.locator(".form-message")).to_contain_text("Not valid JSON")
        await payload.fill('{"decision": "maybe"}')
        await form.get_by_role("button", name="Resume").click()
        await expect(form.locator(".form-message")).to_contain_text("decision")
        assert await engine.store.inbox(engine.worker.id if engine.worker else "") == []

        # The screenshot: the retried step opened, a payload typed in.
        await retried.locator(":scope > summary").click()
        await expect(retried.locator(".error-block")).to_contain_text("the warehouse is busy")
        await payload.fill('{\n  "decision": "approved",\n  "notes": "Ship it today"\n}')
        shot = tmp_path / "dashboard-run.png"
        await page.screenshot(path=str(shot), full_page=True)

        # Resuming from the page completes the run.
        await form.get_by_role("button", name="Resume").click()
        result = await run.result(timeout=DEADLINE)
        assert result["decision"] == "approved"
        assert result["notes"] == "Ship it today"
        await expect(page.locator("#status")).to_have_text("completed")
        await expect(page.locator("#outcome")).to_contain_text("Ship it today")
        await expect(form).to_have_count(0)
        await expect(timeline.locator('[data-call="send_confirmation#1"]')).to_be_visible()
        await page.locator("#log > summary").click()
        await expect(page.locator("#events tr").last).to_contain_text("run_completed")

        # Rerun starts a new run with the same input and opens its page; cancel it there.
        await page.get_by_role("button", name="Rerun").click()
        await expect(page).not_to_have_url(f"{base}/runs/order-A-1001")
        new_id = page.url.rsplit("/", 1)[1]
        rerun = await engine.get_run(new_id)
        assert (rerun.record.workflow, rerun.record.input) == ("review-order", run.record.input)
        await page.get_by_role("button", name="Cancel run").click()
        await expect(page.locator("#status")).to_have_text("cancelled")
        assert await rerun.status() is RunStatus.CANCELLED

        # Fork from a step of the failed run: a new run, forked from it, opens.
        await page.goto(f"{base}/runs/charge-B-7")
        await expect(page.locator("#fork-step")).to_have_value("charge_card#1")
        await page.get_by_role("button", name="Fork from step").click()
        await expect(page).not_to_have_url(f"{base}/runs/charge-B-7")
        forked = page.url.rsplit("/", 1)[1]
        created = (await engine.store.events(forked))[0]
        assert created.data["forked_from"] == "charge-B-7"

        # An API error is said plainly at the top of the page.
        await page.goto(f"{base}/runs/no-such-run")
        await expect(page.get_by_role("alert")).to_contain_text("no run with id 'no-such-run'")

        await browser.close()
        with pytest.raises(WorkflowFailed):
            await failed.result(timeout=DEADLINE)

    assert [] == problems
    assert shot.stat().st_size > 10_000
    if os.environ.get("PERDURE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "dashboard-run.png")


def test_the_screenshot_in_the_docs_is_a_png() -> None:
    """docs/dashboard-run.png, shown by the README, exists and is a PNG."""
    data = (ROOT / "docs" / "dashboard-run.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    readme = (ROOT / "README.md").read_text()
    assert "docs/dashboard-run.png" in readme
