"""Workflows tests/cli/test_cli_hardening.py waits on: a webhook, and a hook of any JSON."""

from __future__ import annotations

from typing import Any

from perdure import create_webhook, define_hook, workflow

anything = define_hook(dict[str, Any], name="cli-hardening-anything")


@workflow(name="cli-hardening-webhook")
async def wait_for_webhook() -> str:
    """Wait for one request to a webhook (its token is made up: read it from the store)."""
    request = await create_webhook()
    return request.method


@workflow(name="cli-hardening-anything")
async def wait_for_anything(token: str) -> dict[str, Any]:
    """Wait for any JSON object sent to ``token``."""
    return await anything.create(token=token)
