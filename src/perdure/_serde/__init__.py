"""Typed serialization of workflow values, without pickle.

``_codec`` turns values into JSON and back by their annotated types (`CallCodec` for
a function's arguments and result, `encode`/`decode` for one value); ``_tags`` is the
self-describing form used where no type is known, and ``_unions`` how an ambiguous
union records which member a value belongs to.
"""

from perdure._serde._codec import CallCodec, JSONValue, decode, encode, json_schema, validator

__all__ = ["CallCodec", "JSONValue", "decode", "encode", "json_schema", "validator"]
