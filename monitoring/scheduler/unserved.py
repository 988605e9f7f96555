"""What the local scheduler does not serve yet, in one place: the protocol's RPCs and orchestrator actions it
answers with a clear refusal naming them (the README's capability table lists the same)."""

from __future__ import annotations

EMULATOR_HINT = "run against the Durable Task Scheduler emulator or Azure instead (set ENDPOINT and TASKHUB)"

UNSERVED_RPCS: dict[str, str] = {
    "SkipGracefulOrchestrationTerminations": "skipping graceful orchestration terminations",
}

UNSERVED_ACTIONS: dict[str, str] = {}  # every orchestrator action of durabletask 1.12 is served


def refusal(name: str, capability: str) -> str:
    """The one line a caller of an unserved RPC or action reads."""
    return f"{name} is not served by the local scheduler: {capability}; {EMULATOR_HINT}"
