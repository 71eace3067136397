"""The SQL of a claim's limit check, shared by the claim, `next_wake_at` and `_flow`.

A module of its own so that `_rows` and `_ops` can use it without importing `_flow`
(which imports them).
"""

from __future__ import annotations

__all__ = ["ROOM", "USED"]

USED = (
    "(SELECT count(*) FROM runs AS h WHERE h.limit_key = {key} "
    "AND h.status IN ('running', 'blocked')) + "
    "(SELECT count(*) FROM runs AS h WHERE h.limit_key = {key} "
    "AND h.status = 'pending' AND h.owner IS NOT NULL)"
)
"""How many runs hold a slot of a limit key: claimed once, and not ended."""

ROOM = (
    "(runs.limit_key IS NULL OR runs.status <> 'pending' OR "
    f"runs.limit_n > {USED.format(key='runs.limit_key')})"
)
"""A due run may be claimed: it has no limit, holds its slot already, or one is free."""
