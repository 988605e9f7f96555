"""JSON payload helpers shared by every model of the pattern: timestamps, decoding, the ``Payload`` base."""

from __future__ import annotations

import functools
import json
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any, TypeVar


class InvalidRequestError(ValueError):
    """A monitor request a person should fix; the message says what and how."""


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


def decode_payload(serialized: str | None) -> Any:
    """A payload stored by the SDK, as JSON if it is JSON (it always is with this SDK), else the raw text."""
    if not serialized:
        return None
    try:
        return json.loads(serialized)
    except ValueError:
        return serialized


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


PayloadType = TypeVar("PayloadType", bound="Payload")


class Payload:
    """Base of the dataclasses that travel as JSON objects; ``from_payload`` ignores unknown keys."""

    def to_payload(self) -> dict[str, Any]:
        return field_dict(self)

    @classmethod
    def from_payload(cls: type[PayloadType], payload: dict[str, Any]) -> PayloadType:
        return cls(**_known_fields(cls, payload))
