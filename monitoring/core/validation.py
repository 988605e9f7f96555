"""Bounded field types for what people send (numbers, seconds, text), and one-line messages for mistakes.

Every edge validates through pydantic with these types (:class:`~monitoring.core.models.MonitorRequest` is
built from them), so the CLI, the notebooks, the Python API and the HTTP API accept and refuse the same
values with the same words, and the OpenAPI schema shows the same bounds. Numbers must be finite and
within their bounds (a 400-digit integer or ``5e-324`` seconds is refused like ``-1``); text must be
valid Unicode (no lone surrogates), of bounded length, without control characters.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo

from monitoring.core.payloads import InvalidRequestError

# Durations: from one millisecond (where zero is not allowed) to 365 days.
MIN_SECONDS = 0.001
MAX_SECONDS = 31_536_000
SHOWN_VALUE_LENGTH = 60


def printable(text: str, limit: int = 300) -> str:
    """``text`` fit for one line of a log or a terminal: control characters and other unprintable ones
    escaped (``\\n``, ``\\x1b``, ``\\ud800``), cut to ``limit`` characters."""
    shown = "".join(
        char if char.isprintable() else char.encode("unicode_escape", "backslashreplace").decode("ascii")
        for char in text
    )
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def shown(value: Any) -> str:
    """A value as a message quotes it: ``repr``, cut short (a 400-digit number stays one line)."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_LENGTH else text[: SHOWN_VALUE_LENGTH - 3] + "..."


def plain(number: float) -> str:
    """``31536000`` rather than ``3.1536e+07``; ``0.001`` as is."""
    return str(int(number)) if number == int(number) else f"{number:g}"


def _name(info: ValidationInfo) -> str:
    return info.field_name or "value"


def _number(value: Any, name: str, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(field=name, message=f"{name} must be {what}, not {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(field=name, message=f"{name} must be a finite number, not {shown(value)}")
    return value


def _bounded(minimum: float, maximum: float, what: str, *, whole: bool, unit: str = "") -> Any:
    def check(value: Any, info: ValidationInfo) -> int | float:
        name = _name(info)
        number = _number(value, name, what)
        if whole and isinstance(number, float):
            if number != int(number):
                raise InvalidRequestError(
                    field=name, message=f"{name} must be a whole number, not {shown(value)}"
                )
            number = int(number)
        if not minimum <= number <= maximum:  # int comparisons stay exact, however many digits
            raise InvalidRequestError(
                field=name,
                message=f"{name} must be from {plain(minimum)} to {plain(maximum)}{unit}, not {shown(value)}",
            )
        return number if whole else float(number)

    return check


def seconds(minimum: float = MIN_SECONDS, maximum: float = MAX_SECONDS) -> Any:
    """A duration in seconds, ``minimum`` to ``maximum`` (default 0.001 to 365 days)."""
    return Annotated[
        float,
        Field(ge=minimum, le=maximum),
        BeforeValidator(_bounded(minimum, maximum, "a number of seconds", whole=False, unit=" seconds")),
    ]


def number(minimum: float, maximum: float) -> Any:
    """A finite number from ``minimum`` to ``maximum``."""
    return Annotated[
        float,
        Field(ge=minimum, le=maximum),
        BeforeValidator(_bounded(minimum, maximum, "a number", whole=False)),
    ]


def whole(minimum: int, maximum: int) -> Any:
    """A whole number from ``minimum`` to ``maximum`` (``3.0`` counts as 3)."""
    return Annotated[
        int,
        Field(ge=minimum, le=maximum),
        BeforeValidator(_bounded(minimum, maximum, "a whole number", whole=True)),
    ]


def check_text(name: str, value: Any, max_length: int, *, blank: bool = False, controls: bool = False) -> str:
    """``value`` if it is acceptable text for ``name``; else :class:`FieldProblem` saying why.

    Acceptable: a string of at most ``max_length`` characters, valid Unicode (no lone surrogates, which
    no JSON or gRPC peer can encode), not blank unless ``blank``, without control characters unless
    ``controls``.
    """
    if not isinstance(value, str):
        raise InvalidRequestError(field=name, message=f"{name} must be a string, not {shown(value)}")
    if not blank and not value.strip():
        raise InvalidRequestError(
            field=name, message=f"{name} must be a non-empty string, not {shown(value)}"
        )
    if len(value) > max_length:
        raise InvalidRequestError(
            field=name, message=f"{name} is longer than {max_length} characters ({len(value)})"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(
            field=name, message=f"{name} is not valid Unicode text (it has a lone surrogate)"
        ) from None
    if not controls and any(unicodedata.category(char) == "Cc" for char in value):
        raise InvalidRequestError(
            field=name, message=f"{name} must not contain control characters, not {shown(value)}"
        )
    return value


def text(max_length: int, *, blank: bool = False) -> Any:
    """A string as :func:`check_text` accepts it."""

    def check(value: Any, info: ValidationInfo) -> str:
        return check_text(_name(info), value, max_length, blank=blank)

    return Annotated[str, Field(min_length=0 if blank else 1, max_length=max_length), BeforeValidator(check)]


def problems(
    errors: Sequence[Mapping[str, Any]], *, allowed: Sequence[str] = ()
) -> list[tuple[str | None, str]]:
    """Each of pydantic's (or FastAPI's) errors as ``(field, one line)``; ``allowed``: the fields an object
    takes, named when an unknown one is refused."""
    found: list[tuple[str | None, str]] = []
    for item in errors:
        cause = (item.get("ctx") or {}).get("error")
        location = [str(part) for part in item.get("loc", ())]
        field = location[-1] if location else None
        if item["type"] == "json_invalid":
            found.append(("body", f"the request body is not valid JSON ({cause} at character {field})"))
        elif isinstance(cause, InvalidRequestError):
            found.append((cause.field or field, str(cause)))
        elif item["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
            found.append((field, f"unknown field {field}{hint}"))
        elif item["type"] in ("dataclass_type", "dict_type", "model_type", "model_attributes_type"):
            found.append(
                (field, f"the request body must be a JSON object, not {json_type(item.get('input'))}")
            )
        else:
            message = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
            found.append((field, f"{field}: {message}" if field else message))
    return found


def invalid_request(error: ValidationError, *, allowed: Sequence[str] = ()) -> InvalidRequestError:
    """The package's own error for a failed validation: one line, naming the first field at fault."""
    found = problems(error.errors(), allowed=allowed)
    return InvalidRequestError(
        "; ".join(message for _, message in found), field=found[0][0] if found else None
    )


def json_type(value: Any) -> str:
    """What a JSON value is, in words: ``an array``, ``a string``, ``null``, ..."""
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
