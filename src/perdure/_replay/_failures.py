"""Exceptions as stored records, and back.

perdure never pickles, so an exception is stored as its qualified type name, message
and formatted traceback. Bringing it back, we rebuild the original type when it is
already imported (we never import a module named in stored data) and can be built
without its ``__init__``; otherwise a `StepError` that keeps the type's name. The
original traceback rides along as a note, so it shows when the error is printed.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from perdure._errors import StepError

__all__ = ["error_from_record", "error_record", "qualified_name"]


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class: what the log records as an error's type."""
    return f"{cls.__module__}.{cls.__qualname__}"


def error_record(error: BaseException) -> dict[str, Any]:
    """The JSON record of an exception: its type, message and traceback."""
    return {
        "type": qualified_name(type(error)),
        "message": _message(error),
        "traceback": "".join(traceback.format_exception(error)),
    }


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken __str__ must not lose the failure itself
        return repr(error.args)


def _resolve(type_name: str) -> type[Exception] | None:
    # The qualname itself may contain dots (nested classes): walk from the longest
    # module prefix that is imported.
    parts = type_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, type) and issubclass(obj, Exception):
            return obj
        return None
    return None


def error_from_record(record: dict[str, Any], *, context: str) -> Exception:
    """Rebuild an exception from its record, as the original type where possible.

    ``context`` says where it came from (``"step generate_draft#1, attempt 4"``) and is
    part of the note that carries the original traceback.
    """
    type_name = str(record.get("type", "builtins.Exception"))
    message = str(record.get("message", ""))
    tb = record.get("traceback")
    error: Exception | None = None
    cls = _resolve(type_name)
    if cls is not None:
        try:
            candidate = cls.__new__(cls)
            candidate.args = (message,)
            if str(candidate) == message:
                error = candidate
        except Exception:  # a class that cannot be built bare falls back to StepError
            error = None
    if error is None:
        error = StepError(message, type=type_name, traceback=tb)
    if tb:
        error.add_note(f"Original traceback ({context}):\n{tb.rstrip()}")
    return error
