"""`define_hook`: typed outside events a workflow waits for, and `resume` to send them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from perdure._replay import HookStream, current_instance
from perdure._serde import decode, encode, validator

if TYPE_CHECKING:
    from perdure._engine import Engine
    from perdure._records import HookRecord

__all__ = ["Hook", "create_webhook", "define_hook", "lookup_hook"]

T = TypeVar("T")

_registry: dict[str, Hook[Any]] = {}
"""Every hook defined in this process, by name (a later definition replaces an earlier)."""


def lookup_hook(name: str) -> Hook[Any] | None:
    """The hook defined under ``name`` in this process, if any (the CLI validates with it)."""
    return _registry.get(name)


class Hook(Generic[T]):
    """A kind of outside event, with the schema its payloads must meet.

    Made by `define_hook`. In a workflow, `create` opens a hook under a token; anywhere
    (any process sharing the store), `resume` sends it a payload.
    """

    def __init__(self, schema: type[T], name: str | None = None) -> None:
        self.schema = schema
        self.name = name or getattr(schema, "__qualname__", None) or repr(schema)
        self._adapter = validator(schema)
        _registry[self.name] = self

    def __repr__(self) -> str:
        return f"<perdure hook {self.name!r}>"

    def create(self, *, token: str | None = None) -> HookStream[T]:
        """Open a hook in the running workflow under ``token`` (a fresh one by default).

        Await the result for one payload (the hook is then disposed), or iterate it
        with ``async for`` for many. A token is unique among live hooks: creating one
        that another live hook holds raises `HookConflictError` when awaited.

        Raises:
            RuntimeError: outside a workflow.
        """
        instance = current_instance()
        if instance is None:
            raise RuntimeError(f"{self.name}.create() must be called inside a workflow")
        if token is None:
            token = f"{self.name}-{instance.uuid4().hex}"
        elif not isinstance(token, str) or not token:
            raise ValueError(f"a hook token must be a non-empty string, got {token!r}")
        return instance.create_hook(self.name, token, "hook", self._decode)

    def _decode(self, data: Any) -> T:
        value: T = decode(data, self.schema, where=f"payload of hook {self.name!r}")
        return value

    def validate(self, payload: Any) -> T:
        """Check ``payload`` against the schema and return it as the schema's type.

        Raises:
            pydantic.ValidationError: (a ValueError) naming the fields that are wrong.
        """
        value: T = self._adapter.validate_python(payload)
        return value

    async def resume(
        self, token: str, payload: T | dict[str, Any], *, engine: Engine | None = None
    ) -> HookRecord:
        """Send ``payload`` to the live hook holding ``token``, waking its run.

        The payload is validated before anything is written; the call returns once it
        is stored durably. Works from any process sharing the store.

        Raises:
            HookNotFoundError: no live hook holds the token (a LookupError).
            pydantic.ValidationError: the payload fails the schema (a ValueError).
        """
        from perdure._engine import current_engine  # noqa: PLC0415 (the engine imports us)

        value = self.validate(payload)
        encoded = encode(value, self.schema, where=f"payload of hook {self.name!r}")
        target = engine if engine is not None else current_engine()
        return await target.resume_hook(token, encoded, name=self.name)


def define_hook(schema: type[T], *, name: str | None = None) -> Hook[T]:
    """Define a hook whose payloads follow ``schema``.

    Args:
        schema: a pydantic model, a dataclass or a TypedDict (anything pydantic
            validates).
        name: the name stored with hooks of this kind; defaults to the schema's name.
    """
    return Hook(schema, name)


def create_webhook(**_: Any) -> HookStream[Any]:
    """A hook with a URL that accepts HTTP requests (needs perdure's HTTP app).

    Raises:
        NotImplementedError: always, until the HTTP surface lands.
    """
    raise NotImplementedError(
        "create_webhook() needs perdure's HTTP app, which is not part of this release yet"
    )
