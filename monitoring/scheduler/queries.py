"""Which instances (and entities) a query names, and how their pages follow one another: pure functions over
records. Times compare in whole microseconds, as they are shown, so a time read from an instance selects it.
A continuation token is the sort key of the last item of the page before, so a page never repeats or skips
an item that existed when the first page was read, whatever was added or removed meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from monitoring.scheduler.records import TERMINAL, Instance, micros

T = TypeVar("T")
DEFAULT_PAGE = 1000


class BadToken(ValueError):
    """A continuation token this scheduler did not make."""


def _bound(message: Any, name: str) -> int | None:
    return getattr(message, name).ToMicroseconds() if message.HasField(name) else None


def instance_filter(query: Any, statuses: Iterable[int], prefix: str = "") -> Callable[[Instance], bool]:
    """The instances an ``InstanceQuery`` or ``PurgeInstanceFilter`` names (created in [from, to))."""
    wanted = set(statuses)
    low, high = _bound(query, "createdTimeFrom"), _bound(query, "createdTimeTo")

    def keep(instance: Instance) -> bool:
        created = micros(instance.created)
        return (
            (not wanted or instance.status in wanted)
            and (low is None or created >= low)
            and (high is None or created < high)
            and instance.instance_id.startswith(prefix)
        )

    return keep


def ended_filter(request: Any) -> Callable[[Instance], bool]:
    """The ended instances a ``ListInstanceIdsRequest`` names (completed in [from, to))."""
    wanted = set(request.runtimeStatus) or set(TERMINAL)
    low, high = _bound(request, "completedTimeFrom"), _bound(request, "completedTimeTo")

    def keep(instance: Instance) -> bool:
        if not instance.terminal or instance.status not in wanted or instance.completed is None:
            return False
        completed = micros(instance.completed)
        return (low is None or completed >= low) and (high is None or completed < high)

    return keep


def page(
    items: Sequence[T], key: Callable[[T], tuple[int, str]], token: str, size: int
) -> tuple[list[T], str | None]:
    """The page of ``items`` (sorted by ``key``) after ``token``, and the token of the next page (None at
    the end). A token is ``<micros>|<id>`` of the last item of the page before."""
    start = 0
    if token:
        at, _, last_id = token.partition("|")
        try:
            after = (int(at), last_id)
        except ValueError:
            raise BadToken("continuation token not from this scheduler") from None
        start = next((n for n, item in enumerate(items) if key(item) > after), len(items))
    size = size if size > 0 else DEFAULT_PAGE
    chosen = list(items[start : start + size])
    more = start + size < len(items) and chosen
    return chosen, (f"{key(chosen[-1])[0]}|{key(chosen[-1])[1]}" if more else None)


def by_creation(instance: Instance) -> tuple[int, str]:
    return micros(instance.created), instance.instance_id


def by_completion(instance: Instance) -> tuple[int, str]:
    return micros(instance.completed or 0.0), instance.instance_id
