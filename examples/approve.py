"""Send a decision to a waiting `ai_approval` run, from a process of its own.

    python examples/approve.py draft-123 approved
    python examples/approve.py draft-123 changes "make it shorter"

It opens the same database as the workers (``$PERDURE_DATABASE_URL`` or the default
file) without running a worker, resumes the hook, and exits.
"""

from __future__ import annotations

import asyncio
import sys

from seed_workflows import approval_hook

import perdure


async def main(token: str, decision: str, notes: str | None) -> None:
    """Resume the hook holding ``token`` with a decision."""
    async with perdure.Engine(worker=False):
        hook = await approval_hook.resume(token, {"decision": decision, "notes": notes})
        print(f"resumed hook {token!r} of run {hook.run_id} with {decision!r}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: approve.py TOKEN approved|changes [NOTES]")
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
