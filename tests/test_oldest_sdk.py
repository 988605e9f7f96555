"""The worker, client and scheduler tests again, on the oldest Durable Task SDK release the package supports.

The oldest release (``monitoring.sdk_range.OLDEST``) of ``durabletask`` and ``durabletask-azuremanaged`` is
installed with pip into a folder of its own (once per state folder), put in front of everything else on
``PYTHONPATH``, and those test files run in a nested pytest: the rest of the environment is this one's.
Only the local scheduler's cases run there: the ``sdk-memory`` cases test the SDK's own in-memory backend,
which is that release's, not this package's. The ``heavy`` fault tests stay on the pinned release: their
bounds on how soon work resumes after a kill assume its worker's reconnect timing (in one CI run, 1.10.0's
worker resumed a schedule 7 s after the last tick, with a 2.3 s outage: past the bound 1.12.0 meets).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from monitoring import sdk_range, settings

ROOT = Path(__file__).resolve().parent.parent
NESTED = "MONITORING_OLDEST_SDK_RUN"  # set in the nested run (for a test that needs to know)
FILES = (
    "tests/test_protocol.py",
    "tests/test_integration.py",
    "tests/test_sub_orchestrations.py",
    "tests/test_entities.py",
    "tests/test_schedules.py",
    "tests/test_rewind.py",
    "tests/test_scheduler.py",
    "tests/test_work_loop.py",
    "tests/test_warm_replay.py",
    "tests/test_worker_choice.py",
    "tests/test_worker_comparison.py",
)
INSTALL_LIMIT = 600  # hang guards for pip and the nested run; both return as soon as they are done
RUN_LIMIT = 1800


def oldest_sdk() -> Path:
    """A folder holding the oldest supported SDK release, installed by pip the first time it is asked."""
    folder = settings.state_dir() / f"sdk-{sdk_range.OLDEST}"
    done = folder / ".installed"
    if not done.exists():
        packages = [f"{package}=={sdk_range.OLDEST}" for package in sdk_range.PACKAGES]
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder)]
        subprocess.run([*command, *packages], check=True, timeout=INSTALL_LIMIT)
        done.touch()
    return folder


def test_the_worker_client_and_scheduler_tests_pass_on_the_oldest_supported_sdk() -> None:
    folder = oldest_sdk()
    env = {**os.environ, "PYTHONPATH": str(folder), NESTED: "1"}
    probe = "from monitoring import sdk_range; print(sdk_range.installed(), sdk_range.problem())"
    seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert seen.stdout.split() == [sdk_range.OLDEST, "None"]  # that release is the one the run imports
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not sdk-memory"]
    command += ["-m", "not heavy", *FILES]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_LIMIT)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and " failed" not in done.stdout.splitlines()[-1]
