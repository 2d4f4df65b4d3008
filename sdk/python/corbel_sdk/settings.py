"""Settings parsing with the same words as the Rust SDK (serde), so a policy written in several
languages refuses bad settings with the same message: ``invalid settings: missing field `labels```."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """Settings that do not fit their schema; the message is what the operator sees."""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _invalid_type(value: Any, expected: str) -> SettingsError:
    return SettingsError(f"invalid type: {_describe(value)}, expected {expected}")


@dataclass(frozen=True)
class Schema(Generic[T]):
    """How to read one settings value; build with :func:`string`, :func:`list_of`, :func:`obj`..."""

    parse: Callable[[Any], T]
    optional: bool = False
    default: Any = None


def string() -> Schema[str]:
    def parse(v: Any) -> str:
        if not isinstance(v, str):
            raise _invalid_type(v, "a string")
        return v

    return Schema(parse)


def boolean() -> Schema[bool]:
    def parse(v: Any) -> bool:
        if not isinstance(v, bool):
            raise _invalid_type(v, "a boolean")
        return v

    return Schema(parse)


def integer() -> Schema[int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _invalid_type(v, "an integer")
        return v

    return Schema(parse)


def list_of(item: Schema[T]) -> Schema[list[T]]:
    def parse(v: Any) -> list[T]:
        if not isinstance(v, list):
            raise _invalid_type(v, "a sequence")
        return [item.parse(x) for x in v]

    return Schema(parse)


def map_of(value: Schema[T]) -> Schema[dict[str, T]]:
    def parse(v: Any) -> dict[str, T]:
        if not isinstance(v, dict):
            raise _invalid_type(v, "a map")
        return {k: value.parse(x) for k, x in v.items()}

    return Schema(parse)


def optional(schema: Schema[T], default: Any = None) -> Schema[T]:
    """A field that may be absent (or null); absent gives ``default``."""
    return Schema(schema.parse, optional=True, default=default)


def obj(**fields: Schema[Any]) -> Schema[dict[str, Any]]:
    """An object with exactly these fields: a missing required field and an unknown field are
    refused, as ``#[serde(deny_unknown_fields)]`` does in Rust."""
    names = list(fields)
    if not names:
        expected = "there are no fields"
    elif len(names) == 1:
        expected = f"expected `{names[0]}`"
    else:
        expected = "expected one of " + ", ".join(f"`{n}`" for n in names)

    def parse(v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise _invalid_type(v, f"struct with {len(names)} fields")
        for key in v:
            if key not in fields:
                raise SettingsError(f"unknown field `{key}`, {expected}")
        out: dict[str, Any] = {}
        for name, schema in fields.items():
            if name not in v or (schema.optional and v[name] is None):
                if not schema.optional:
                    raise SettingsError(f"missing field `{name}`")
                out[name] = schema.default
            else:
                out[name] = schema.parse(v[name])
        return out

    return Schema(parse)


def parse_settings(schema: Schema[T] | None, text: str) -> Any:
    """Parses settings JSON text; raises :class:`SettingsError` with ``invalid settings: ...``."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise SettingsError(f"invalid settings: {e}") from None
    if schema is None:
        return value
    try:
        return schema.parse(value)
    except SettingsError as e:
        raise SettingsError(f"invalid settings: {e}") from None


__all__ = [
    "Schema", "SettingsError", "string", "boolean", "integer", "list_of", "map_of", "optional",
    "obj", "parse_settings",
]
