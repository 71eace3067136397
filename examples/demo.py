"""`make demo`: the seed documents' three workflows, end to end, on the embedded SQLite file.

1. ai-content: a draft and a summary; the summarizer fails once and is retried.
2. ai-refine: a draft, a durable sleep, a refinement. The seed sleeps 7 days; the demo
   sleeps 3 seconds (set PERDURE_REFINE_WAIT to change it).
3. ai-approval: a draft, then a wait on a hook that a *second process*
   (examples/approve.py) resumes with a decision.

Each run's timeline is printed from its log.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("PERDURE_REFINE_WAIT", "3s")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from seed_workflows import ai_approval, ai_content, ai_refine  # noqa: E402
from timeline import print_timeline  # noqa: E402

import perdure  # noqa: E402


async def wait_for_hook(engine: perdure.Engine, token: str) -> None:
    """Wait until a live hook holds ``token``."""
    while await engine.store.get_hook(token) is None:
        await engine.changed().wait()


async def main() -> None:
    """Run the three workflows and print their timelines."""
    async with perdure.Engine() as engine:
        print(f"database: {engine.url}")
        suffix = os.urandom(3).hex()
        token = f"draft-{suffix}"
        content = await engine.start(ai_content, "cats", run_id=f"content-{suffix}")
        refine = await engine.start(ai_refine, "d-42", run_id=f"refine-{suffix}")
        approval = await engine.start(ai_approval, "dogs", token, run_id=f"approval-{suffix}")
        print(f"started {content.id}, {refine.id} and {approval.id}")

        print(f"{approval.id} waits for a decision on hook {token!r} ...")
        await asyncio.wait_for(wait_for_hook(engine, token), 30)
        approver = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "approve.py"), token, "approved", env=os.environ.copy()
        )
        if await approver.wait() != 0:
            raise SystemExit("the approval process failed")

        print("content:", await content.result(timeout=30))
        print("refine: ", await refine.result(timeout=60))
        print("approval:", await approval.result(timeout=30))
        for run in (content, refine, approval):
            await print_timeline(run)


if __name__ == "__main__":
    asyncio.run(main())
