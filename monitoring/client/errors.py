"""What the client API raises when an instance is unknown or its state does not allow an operation."""

from __future__ import annotations


class UnknownInstanceError(LookupError):
    """No orchestration instance has this id in the task hub."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no monitor with instance id {instance_id!r} in this task hub")
        self.instance_id = instance_id


class UnknownJobError(LookupError):
    """No monitor in the task hub watches this job."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no monitor of job {job_id!r} in this task hub")
        self.job_id = job_id


class InstanceStateError(RuntimeError):
    """The instance exists but its runtime status does not allow the operation."""

    def __init__(self, instance_id: str, runtime_status: str, message: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.runtime_status = runtime_status


class InstanceFinishedError(InstanceStateError):
    """The instance has ended: it takes no more events and cannot be terminated."""


class InstanceNotFinishedError(InstanceStateError):
    """The instance is still active: it cannot be purged yet."""


class LimitExceededError(RuntimeError):
    """The scheduler refused the request because a limit was reached (gRPC ``RESOURCE_EXHAUSTED``): too many
    events waiting for the instance, its history is full, or too many instances run. Nothing was changed;
    the message says which limit. The HTTP API answers 429."""


class JobStatusUnavailableError(RuntimeError):
    """The job's status source could not answer now (a real source failing, or one not registered in this
    process); the message says which monitor asked and why. The HTTP API answers 502."""
