"""Deploying new code while runs are in flight: the README's "Deploying new code", run.

    python examples/deploying/deploy.py [DATABASE_URL]

One workflow, ``shop-checkout``, in versions that stand for one module at successive
commits (a process holds one definition per workflow name, so each version runs in a
process of its own, as each deploy would):

- ``shop_v1``: reserve, wait for a go-ahead (a hook), charge;
- ``shop_v2_compatible``: a step's body changed and a step added after the wait;
- ``shop_v2_unpatched``: charges before it reserves, which runs in flight cannot take;
- ``shop_v2``: the same change behind ``perdure.patched("charge-first")``.

It goes through the situations in turn: version 1 leaves runs waiting and exits; the
compatible version passes ``perdure check-replay`` and finishes one of them; the
unpatched one fails the check (exit 1, naming the run), and deployed anyway it blocks
that run (not failed: nothing it recorded is lost); the patched one passes the check,
unblocks the run by itself, and finishes it down the old branch and a new run down the
new branch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

WAIT_FOR_HOOKS = """
async def wait_for_hooks(engine, *orders):
    while not all([await engine.store.get_hook(f"go-{o}") for o in orders]):
        await asyncio.sleep(0.02)
"""

START_V1 = """
async def main(url):
    async with Engine(url) as engine:   # version 1 is deployed
        for order in ("order-1", "order-2"):
            await engine.start(shop.checkout, order, run_id=order)
        await wait_for_hooks(engine, "order-1", "order-2")
    # the process exits: both runs wait for their go-ahead, in the database only
"""

DEPLOY_ANYWAY = """
async def main(url):
    async with Engine(url) as engine:   # deployed despite the check: it takes order-2 over
        run = await engine.get_run("order-2")
        while await run.status() != "blocked":
            await asyncio.sleep(0.05)
        reason = (await run.refresh()).blocked_reason or ""
        print(f"  order-2 is {await run.status()}: {reason.splitlines()[0][:100]}...")
"""

FINISH = """
async def main(url, *orders):
    async with Engine(url) as engine:   # this version is deployed
        for order in orders:
            await engine.start(shop.checkout, order, run_id=order)  # idempotent: an old run stays
        await wait_for_hooks(engine, *orders)
        for order in orders:
            run = await engine.get_run(order)
            while await run.status() == "blocked":   # this code tries it again by itself
                await asyncio.sleep(0.05)
            await shop.go.resume(f"go-{order}", {})
            result = await (await engine.get_run(order)).result(timeout=30)
            print(f"  {order}: {result}")
"""


def python(module: str, program: str, *args: str) -> None:
    """Run ``program``'s ``main(*args)`` in a new process that imports ``module`` as shop."""
    source = "\n".join(
        [
            "import asyncio, sys",
            "from perdure import Engine",
            f"import {module} as shop",
            textwrap.dedent(WAIT_FOR_HOOKS),
            textwrap.dedent(program),
            "asyncio.run(main(*sys.argv[1:]))",
        ]
    )
    subprocess.run([sys.executable, "-c", source, *args], check=True, env=_env())  # noqa: S603 (our own program)


def perdure(*args: str) -> int:
    """Run the ``perdure`` command; its exit status."""
    print(f"$ perdure {' '.join(args[:-2])}")
    command = [sys.executable, "-m", "perdure", *args]
    return subprocess.run(command, check=False, env=_env()).returncode  # noqa: S603 (ours)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PERDURE_DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def main(url: str) -> int:
    db = ("--database-url", url)
    print("1. version 1 starts order-1 and order-2; both wait for their go-ahead")
    python("shop_v1", START_V1, url)

    print("\n2. a compatible change: check it, deploy it, finish order-1 on it")
    if perdure("check-replay", "--module", "shop_v2_compatible", *db) != 0:
        return 1
    python("shop_v2_compatible", FINISH, url, "order-1")

    print("\n3. an incompatible change: check-replay names the run it would block")
    if perdure("check-replay", "--module", "shop_v2_unpatched", *db) != 1:
        return 1
    print("   deployed anyway, it blocks the run: blocked, not failed")
    python("shop_v2_unpatched", DEPLOY_ANYWAY, url)

    print("\n4. the same change behind perdure.patched: it passes; deployed, it unblocks")
    print("   order-2 by itself, and both branches run")
    if perdure("check-replay", "--module", "shop_v2", *db) != 0:
        return 1
    python("shop_v2", FINISH, url, "order-2", "order-3")
    print("\norder-2 (started on v1) took the old branch; order-3 (on v2) the new one.")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main(sys.argv[1]))
    with tempfile.TemporaryDirectory() as folder:
        sys.exit(main(f"sqlite:///{folder}/shop.db"))
