"""Run and step ids on log records, for any handler and format.

perdure logs through the standard `logging` module (loggers ``perdure``,
``perdure.worker``, ``perdure.workflow``). `RunContextFilter` adds the current run's
and step's ids to every record that passes through it, perdure's and the user's own
alike, so a format such as ``"%(perdure_run_id)s %(perdure_step_id)s %(message)s"``
says which run a line belongs to::

    handler = logging.StreamHandler()
    handler.addFilter(perdure.RunContextFilter())
"""

from __future__ import annotations

import logging

from perdure._replay import current_instance
from perdure._workflow import step_context

__all__ = ["RunContextFilter"]


class RunContextFilter(logging.Filter):
    """Adds the run's and step's ids to records, and lets every record pass.

    The attributes are ``perdure_run_id``, ``perdure_workflow``, ``perdure_step_id`` and
    ``perdure_attempt`` ("" and 0 outside a run).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record`` with the run and step it was logged from."""
        run_id = workflow = step_id = ""
        attempt = 0
        current = step_context.get()
        if current is not None:
            step, run = current
            run_id, workflow, step_id, attempt = (
                run.run_id,
                run.workflow_name,
                step.step_id,
                step.attempt,
            )
        else:
            instance = current_instance()
            if instance is not None:
                run_id, workflow = instance.run_id, instance.spec.name
        record.perdure_run_id = run_id
        record.perdure_workflow = workflow
        record.perdure_step_id = step_id
        record.perdure_attempt = attempt
        return True
