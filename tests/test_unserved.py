"""What the local scheduler does not serve yet answers with one clear refusal naming it, never a hang or a
silent drop: every unserved RPC is UNIMPLEMENTED with its name and what to use instead, and the README's
capability table lists exactly these RPCs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from sdk_backends import Backend, Registry, backend_with_worker

from monitoring.scheduler.servicer import SchedulerServicer
from monitoring.scheduler.unserved import EMULATOR_HINT, UNSERVED_RPCS

README = Path(__file__).resolve().parents[1] / "README.md"
SERVICE = pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"]
app = Registry()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backend_with_worker("local", tmp_path_factory.mktemp("unserved"), app) as running:
        yield running


def test_every_rpc_of_the_protocol_is_served_or_refused_by_name() -> None:
    protocol = {n for n in vars(stubs.TaskHubSidecarServiceServicer) if not n.startswith("_")}
    served = {n for n in protocol if n in vars(SchedulerServicer) and n not in UNSERVED_RPCS}
    assert set(UNSERVED_RPCS) <= protocol, "the refusals name real RPCs"
    assert served | set(UNSERVED_RPCS) == protocol, "no RPC falls through to gRPC's anonymous default"


@pytest.mark.parametrize("method", sorted(UNSERVED_RPCS))
def test_an_unserved_rpc_is_unimplemented_with_its_name(backend: Backend, method: str) -> None:
    request_type = getattr(pb, SERVICE.methods_by_name[method].input_type.name)
    address = backend.address.removeprefix("http://")
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as raised:
        getattr(stubs.TaskHubSidecarServiceStub(channel), method)(request_type(), timeout=30)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert method in raised.value.details() and EMULATOR_HINT in raised.value.details()


def test_the_readme_lists_exactly_the_unserved_rpcs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("<!-- unserved-rpcs -->") : text.index("<!-- /unserved-rpcs -->")]
    assert set(re.findall(r"`(\w+)`", section)) >= set(UNSERVED_RPCS)
    named = {n for n in re.findall(r"`(\w+)`", section) if n in vars(stubs.TaskHubSidecarServiceServicer)}
    assert named == set(UNSERVED_RPCS)
