"""The ``perdure`` command line.

Commands: ``worker``, ``runs``, ``show``, ``events``, ``cancel``, ``hooks``,
``resume-hook``, ``rerun``, ``fork`` and ``web``; ``perdure --help`` describes them. Every command
takes ``--database-url`` (default ``$PERDURE_DATABASE_URL``, else
``sqlite:///.perdure/perdure.db``). Exit codes: 0 success, 1 a failed operation, 2 wrong
usage or an unknown run id or token.
"""

from __future__ import annotations

from perdure._cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
