"""The dashboard's control verbs (cancel, suspend, resume, terminate, purge) and the guard on its
state-changing routes.

Each verb goes through :class:`~monitoring.client.monitors.MonitorClient`, the client API the CLI uses,
and applies only to the runtime statuses named in :data:`ACTIONS`; the page shows the same table, so a
button is enabled exactly where the route accepts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from monitoring.client.card import read_card
from monitoring.client.errors import InstanceStateError
from monitoring.client.monitors import MonitorClient
from monitoring.client.overview import InstanceIndex
from monitoring.client.snapshots import InstanceDetails
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.core.validation import printable

ACTION_WAIT_SECONDS = 10.0
ACTIVE = frozenset({"Pending", "Running", "Suspended"})
ENDED = frozenset({"Completed", "Failed", "Terminated"})


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    applies_to: frozenset[str]
    done: Callable[[InstanceDetails], bool]  # true once the scheduler reports the action's effect
    confirm: str  # what the confirmation dialog says will happen
    takes_reason: bool = True
    monitors_only: bool = False


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action(
            "cancel",
            "Cancel",
            frozenset({"Pending", "Running"}),
            lambda d: d.is_terminal,
            "The monitor receives its own cancel event and ends at once, final status Cancelled.",
            monitors_only=True,
        ),
        Action(
            "suspend",
            "Suspend",
            frozenset({"Pending", "Running"}),
            lambda d: d.runtime_status == "Suspended",
            "The orchestration pauses: no checks until it is resumed.",
        ),
        Action(
            "resume",
            "Resume",
            frozenset({"Suspended"}),
            lambda d: d.runtime_status != "Suspended",
            "The orchestration continues and catches up the checks that came due meanwhile.",
        ),
        Action(
            "terminate",
            "Terminate",
            ACTIVE,
            lambda d: d.runtime_status == "Terminated",
            "The orchestration stops without running more of its code (runtime status Terminated).",
        ),
        Action(
            "purge",
            "Purge",
            ENDED,
            lambda d: True,
            "The instance and its history are deleted from the task hub. This cannot be undone.",
            takes_reason=False,
        ),
    )
}


def _refusal(action: Action, details: InstanceDetails) -> str | None:
    """Why ``action`` does not apply to this instance now; None if it does."""
    if action.monitors_only and details.name != ORCHESTRATOR_NAME:
        return f"{action.label} sends the monitor's own cancel event, and this is a {details.name}"
    if details.runtime_status not in action.applies_to:
        allowed = ", ".join(sorted(action.applies_to))
        return f"{action.label} applies to {allowed} instances; this one is {details.runtime_status}"
    return None


def _when(action: Action) -> str:
    """Where ``action`` applies, in a few words: "Suspended", "Completed, Failed or Terminated"."""
    statuses = sorted(action.applies_to)
    words = statuses[0] if len(statuses) == 1 else f"{', '.join(statuses[:-1])} or {statuses[-1]}"
    return f"a monitor that is {words}" if action.monitors_only else words


def available_actions(details: InstanceDetails) -> list[dict[str, Any]]:
    """Every action, enabled only where it applies, with a sentence saying why (not)."""
    shown = []
    for action in ACTIONS.values():
        refusal = _refusal(action, details)
        shown.append(
            {
                "name": action.name,
                "label": action.label,
                "enabled": refusal is None,
                "why": refusal or action.confirm,
                "when": _when(action),
                "confirm": action.confirm,
                "takes_reason": action.takes_reason,
            }
        )
    return shown


def perform(
    monitors: MonitorClient, index: InstanceIndex, action: Action, instance_id: str, reason: str | None
) -> dict[str, Any]:
    """Do ``action`` through the client API, then wait (briefly) until the scheduler reports its effect."""
    details = monitors.details(instance_id)
    refusal = _refusal(action, details)
    if refusal is not None:
        raise InstanceStateError(instance_id, details.runtime_status, refusal)
    if action.name == "purge":
        deleted = monitors.purge(instance_id)
        index.forget(instance_id)
        return {
            "runtimeStatus": None,
            "state": None,
            "message": f"purged ({deleted} instance, with its history)",
        }
    getattr(monitors, action.name)(instance_id, reason)
    deadline = time.monotonic() + ACTION_WAIT_SECONDS
    while not action.done(details := monitors.details(instance_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    index.refresh(force=True)
    state = read_card(details.runtime_status, details.custom_status, details.input, details.output).state
    now = details.runtime_status + (f" ({state})" if state != details.runtime_status else "")
    if action.done(details):
        message = f"done; the scheduler now reports {now}"
    else:
        message = (
            f"sent; after {ACTION_WAIT_SECONDS:g} s the scheduler still reports {now} "
            "(it takes effect once a worker runs the orchestration)"
        )
    return {"runtimeStatus": details.runtime_status, "state": state, "message": message}


def mutation_refusal(request: Request) -> tuple[int, str] | None:
    """Why a state-changing request is refused, as (status, message), or None to accept it.

    The shared guard (:mod:`monitoring.web.edge`) has already refused a foreign ``Host``, a page of another
    site, a body that is not JSON and an oversized one. The dashboard's own verbs ask two things more: the
    request comes from the dashboard's own origin (not merely this machine: a page another local server
    shows cannot press them), and it says ``Content-Type: application/json`` even without a body, which a
    browser sends to another origin only after a preflight this app never approves.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return 415, "send the request as JSON (Content-Type: application/json)"
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin.lower() != own.lower():
        return 403, f"only the dashboard's own pages may do this, not one from {printable(origin, 80)}"
    return None
