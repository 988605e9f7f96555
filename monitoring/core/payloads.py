"""JSON payload helpers shared by every model of the pattern: timestamps, decoding, the ``Payload`` base."""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any, TypeVar


class InvalidRequestError(ValueError):
    """A request a person should fix; the message says what and how, ``field`` which field (if one)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def to_iso(moment: datetime) -> str:
    """Format a UTC datetime (naive means UTC, like the orchestration clock) as ``...T18:05:15.123Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def from_iso(text: str) -> datetime:
    """Parse a timestamp written by :func:`to_iso` (or any ISO 8601 form) into an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


# Deeper JSON than this, written by someone else, is shown as its text: Python's JSON encoder and decoder
# recurse, and a few thousand levels would overflow the stack of a web request.
MAX_JSON_DEPTH = 100


def decode_payload(serialized: str | None) -> Any:
    """A payload stored by the SDK, as JSON if it is JSON (it always is with this SDK), else the raw text
    (also when it nests deeper than :data:`MAX_JSON_DEPTH`)."""
    if not serialized:
        return None
    try:
        value = json.loads(serialized)
    except (ValueError, RecursionError):
        return serialized
    return value if json_depth(value) <= MAX_JSON_DEPTH else serialized


def json_depth(value: Any) -> int:
    """How many arrays and objects nest in ``value`` (a scalar is 0, ``[1]`` is 1, ``[[]]`` is 2), counted
    without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, infinities) as null; everything else unchanged. Strict
    JSON has no such numbers, but Python's encoder writes them, so data published by others may hold them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _known_fields(cls: type, payload: dict[str, Any]) -> dict[str, Any]:
    names = _field_names(cls)
    return {key: value for key, value in payload.items() if key in names}


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def field_dict(instance: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict. Every field here is a plain JSON value, so no deep copy: several
    times cheaper than ``dataclasses.asdict``, which matters because the orchestrator builds these on
    every replay."""
    return {name: getattr(instance, name) for name in _field_names(type(instance))}


@functools.cache
def _field_kinds(cls: type) -> dict[str, tuple[type, ...]]:
    """Each field's accepted Python types: ``str | None`` -> ``(str, NoneType)``, a Literal -> its values'."""
    hints = typing.get_type_hints(cls)
    return {name: _kinds(hints[name]) for name in _field_names(cls)}


def _kinds(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return tuple(kind for argument in typing.get_args(hint) for kind in _kinds(argument))
    if origin is typing.Literal:
        return tuple({type(value) for value in typing.get_args(hint)})
    return (hint,) if isinstance(hint, type) else (object,)


def _fitting(value: Any, kinds: tuple[type, ...]) -> tuple[bool, Any]:
    """Whether ``value`` (decoded JSON) fits a field of ``kinds``, and the value to keep (3.0 -> 3 for an
    int, 3 -> 3.0 for a float); booleans are no numbers, non-finite floats none either."""
    if object in kinds:
        return True, value
    if isinstance(value, bool):
        return bool in kinds, value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return False, value
        if float in kinds:
            return True, float(value)
        if int in kinds and float(value).is_integer():
            return True, int(value)
        return False, value
    return isinstance(value, kinds), value


PayloadType = TypeVar("PayloadType", bound="Payload")


class Payload:
    """Base of the dataclasses that travel as JSON objects; ``from_payload`` ignores unknown keys."""

    def to_payload(self) -> dict[str, Any]:
        return field_dict(self)

    @classmethod
    def from_payload(cls: type[PayloadType], payload: dict[str, Any]) -> PayloadType:
        return cls(**_known_fields(cls, payload))

    @classmethod
    def read(cls: type[PayloadType], payload: Any) -> PayloadType | None:
        """Read JSON written by anyone (another worker, another implementation of the pattern): None
        unless it is an object; a field that is missing or of another type takes its default, unknown
        keys are ignored. Needs a default for every field."""
        if not isinstance(payload, dict):
            return None
        values = {}
        for name, kinds in _field_kinds(cls).items():
            if name in payload:
                fits, value = _fitting(payload[name], kinds)
                if fits:
                    values[name] = value
        return cls(**values)
