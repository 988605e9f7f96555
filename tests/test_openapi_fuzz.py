"""Schemathesis over every route of both web apps, in process (ASGI), against a real local scheduler.

It generates valid and invalid requests from the OpenAPI schema that FastAPI draws from the models, and
checks every answer: never a 5xx, only documented status codes, content types and headers, bodies that
match their declared schema, invalid input refused. The number of examples is bounded and the run
derandomized, so it takes seconds and fails the same way twice.

``positive_data_acceptance`` is left out on purpose: the request model has rules across fields that JSON
Schema cannot state (the interval no longer than the timeout, at most a million planned checks, retry
waits within a year), so some schema-valid bodies are rightly refused with 400; ``test_bad_input.py`` covers
each of those rules by name.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from monitoring.client.monitors import MonitorClient
from monitoring.runtime.connection import local_connection
from monitoring.scheduler.server import LocalScheduler
from monitoring.web.api import create_app
from monitoring.web.dashboard import create_dashboard_app

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis needs Python 3.11 or newer")
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

LOCAL = {"Host": "localhost"}  # the apps answer loopback names only; the ASGI client's own is testserver
EXAMPLES = 60


@pytest.fixture(scope="module")
def fuzzed_monitors() -> Iterator[MonitorClient]:
    """A scheduler of its own and no worker: the monitors the fuzzer starts stay Pending and cost nothing."""
    with LocalScheduler(0) as scheduler, MonitorClient(local_connection(scheduler.address)) as monitors:
        yield monitors


APPS = {"api": create_app, "dashboard": create_dashboard_app}
# The schemas come from the apps' routes alone: drawn over a client that is never called (nothing listens
# at its address); the requests go to apps built over the real scheduler below.
_UNUSED = MonitorClient(local_connection("http://127.0.0.1:9"))
api = schemathesis.openapi.from_dict(create_app(_UNUSED).openapi())
dashboard = schemathesis.openapi.from_dict(create_dashboard_app(_UNUSED).openapi())
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def apps(fuzzed_monitors: MonitorClient) -> dict[str, object]:
    return {name: factory(fuzzed_monitors) for name, factory in APPS.items()}


@api.parametrize()
@FUZZ
def test_the_http_api_answers_every_generated_request_as_documented(case: object, apps: dict) -> None:
    case.call_and_validate(  # type: ignore[attr-defined]
        app=apps["api"], headers=LOCAL, excluded_checks=[positive_data_acceptance]
    )


@dashboard.parametrize()
@FUZZ
def test_the_dashboard_api_answers_every_generated_request_as_documented(case: object, apps: dict) -> None:
    case.call_and_validate(  # type: ignore[attr-defined]
        app=apps["dashboard"], headers=LOCAL, excluded_checks=[positive_data_acceptance]
    )
