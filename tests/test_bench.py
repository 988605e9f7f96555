"""The benchmark: pure helpers, the CLI edge, and a tiny smoke run of every stack (no timing limits)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import grpc
import pytest
from durabletask.client import OrchestrationQuery
from processes import child_pids, command_line_once_started, wait_until_gone

from monitoring import bench
from monitoring.bench.__main__ import main as bench_main
from monitoring.core.jobs import JobCheckRequest
from monitoring.core.models import MonitorRequest
from monitoring.core.payloads import InvalidRequestError
from monitoring.runtime.connection import create_client, local_connection

TINY = [
    "--monitors", "6", "--sweep", "3", "--interval", "0.2", "--checks", "3", "--saturated-monitors", "4",
    "--long-monitors", "1", "--long-checks", "30", "--reference-long-checks", "30",
]  # fmt: skip


def test_percentile_picks_from_the_sorted_values() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert bench.percentile(values, 0.5) == 3.0
    assert bench.percentile(values, 0.99) == 5.0
    assert bench.percentile(values, 0.0) == 1.0
    assert math.isnan(bench.percentile([], 0.5))


def test_cpu_per_check_uses_the_cpu_spent_between_checks_near_a_number() -> None:
    records = [bench.CheckRecord("m", n, n, n, cpu=n * 0.002) for n in range(1, 21)]
    records += [bench.CheckRecord("m", 1000 + n, 1000 + n, 1000 + n, cpu=1 + n * 0.004) for n in range(10)]
    assert bench.cpu_per_check_at(records, 10, 2) == pytest.approx(2.0)
    assert bench.cpu_per_check_at(records, 1005, 2) == pytest.approx(4.0)


def test_cpu_per_check_takes_each_process_clock_on_its_own() -> None:
    """Two worker processes, each with its own CPU clock (one far ahead): spans are per process."""
    first = [bench.CheckRecord("a", n, n, n, cpu=n * 0.002, pid=1) for n in range(1, 21)]
    second = [bench.CheckRecord("b", n, n, n + 0.5, cpu=500 + n * 0.004, pid=2) for n in range(1, 21)]
    # Checks 8..12 in each: 4 gaps of 2 ms and 4 of 4 ms.
    assert bench.cpu_per_check_at(first + second, 10, 2) == pytest.approx(3.0)


def test_saturation_is_the_first_size_whose_throughput_falls_behind_the_offered_load() -> None:
    def batch(monitors: int, achieved: float) -> bench.BatchResult:
        figures = {field.name: 0.0 for field in dataclasses.fields(bench.BatchResult)}
        offered = float(monitors)
        return bench.BatchResult(**{**figures, "monitors": monitors, "offered_checks_per_second": offered,
                                    "checks_per_second": achieved})  # fmt: skip

    runs = [batch(10, 10.1), batch(100, 97.0), batch(400, 180.0), batch(800, 185.0)]
    assert bench.saturation_point(runs) == 400
    assert bench.saturation_point(runs[:2]) is None


def test_job_source_is_validated_and_reaches_the_check() -> None:
    with pytest.raises(
        InvalidRequestError, match=r"job_source must be one of simulated, .*\bbench\b.*, not 'nope'"
    ):
        MonitorRequest(job_id="j", job_source="nope")
    assert "job_source" not in MonitorRequest(job_id="j").to_payload()  # wire shape unchanged by default
    assert MonitorRequest(job_id="j", job_source="bench").to_payload()["job_source"] == "bench"
    old_shape = JobCheckRequest(job_id="j", monitor_started_at="2026-01-01T00:00:00.000Z",
                                job_duration_seconds=1, job_outcome="Completed").to_payload()  # fmt: skip
    assert JobCheckRequest.from_payload({**old_shape, "due_at": None}).due_at is None


def test_recording_source_notes_due_and_actual_times() -> None:
    source = bench.RecordingJobSource()
    request = JobCheckRequest(
        job_id="rec-1",
        monitor_started_at="2026-01-01T00:00:00.000Z",
        job_duration_seconds=10,
        job_outcome="Completed",
        source="bench",
        check_number=2,
        due_at="2026-01-01T00:00:05.000Z",
    )
    report = source.check(request, datetime(2026, 1, 1, 0, 0, 5, 250000, tzinfo=timezone.utc))
    assert report.status == "Running"
    (record,) = source.records("rec-")
    assert record.check_number == 2 and record.pid == os.getpid()
    assert record.actual - record.due == pytest.approx(0.25)


def test_worker_process_records_reach_the_bench_through_the_spool(tmp_path: Path) -> None:
    worker_side, bench_side = bench.RecordingJobSource(), bench.RecordingJobSource()
    worker_side.spool_to(tmp_path)
    bench_side.read_spool(tmp_path)
    started = "2026-01-01T00:00:00.000Z"
    for number in (1, 2):
        request = JobCheckRequest("spool-1", started, 10, "Completed", "bench", number, due_at=started)
        worker_side.check(request, datetime(2026, 1, 1, 0, 0, number, tzinfo=timezone.utc))
    assert worker_side.records("spool-") == [], "a worker process keeps nothing in memory"
    assert bench_side.count("spool-") == 2
    (spool_file,) = tmp_path.glob("records-*.jsonl")
    with open(spool_file, "a") as spool:
        spool.write('{"job_id": "spool-1", "check_nu')  # a line still being written is not read yet
    assert [record.check_number for record in bench_side.records("spool-")] == [1, 2]
    assert bench_side.count("spool-") == 2


def test_bad_bench_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--stacks", "project,nope"]) == 2
    assert bench_main(["--monitors", "0"]) == 2
    assert bench_main(["--checks", "1"]) == 2
    assert bench_main(["--sweep", "10,x"]) == 2
    assert bench_main(["--waiting", "0"]) == 2
    assert bench_main(["--waiting", "100", "--waiting-interval", "nan"]) == 2
    assert bench_main(["--interval", "inf"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 7 and all(line.startswith("error: ") for line in errors)
    assert errors[-2:] == [
        "error: --waiting-interval must be a number of seconds greater than zero, not nan",
        "error: --interval must be a number of seconds greater than zero, not inf",
    ]


HEADER = "| figure | " + " | ".join(bench.STACKS) + " |"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """``python -m monitoring.bench`` at a tiny size: every stack, each in its own process; its JSON, and
    the README it rewrote."""
    state = tmp_path_factory.mktemp("bench-state")
    readme = state / "README.md"
    readme.write_text(f"# x\n{bench.README_START}\nold\n{bench.README_END}\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitoring.bench", *TINY, "--json", "--update-readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MONITORING_STATE_DIR": str(state)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1]), readme.read_text()


@pytest.fixture(scope="module")
def smoke_run(smoke: tuple[dict, str]) -> dict:
    return smoke[0]


def test_the_readme_block_records_the_command_as_typed(smoke: tuple[dict, str]) -> None:
    typed = "python -m monitoring.bench " + " ".join(TINY) + " --json --update-readme "
    header = HEADER
    assert f"with `{typed}" in smoke[1] and header in smoke[1]


def test_smoke_run_reports_every_figure_for_every_stack(smoke_run: dict) -> None:
    assert set(smoke_run["stacks"]) == set(bench.STACKS)
    for name, result in smoke_run["stacks"].items():
        assert [run["monitors"] for run in result["on_time"]] == [6, 3], "--monitors first, then the sweep"
        on_time = dataclasses.asdict(bench.StackResult.from_json(result).main_on_time)
        assert on_time["monitors"] == 6
        assert on_time["checks_done"] == on_time["checks_expected"] == 6 * 3, name
        # Six starts spread over one 0.2 s interval: the last one 5/6 of the way in, not all at once.
        assert on_time["started_over_seconds"] >= 0.2 * 5 / 6, name
        assert on_time["worker_processes_checking"] == 1 or name == "scale-out"
        # Measured, not defaulted: starting monitors and checking them took time and CPU (the percentiles'
        # order is test_percentile_picks_from_the_sorted_values's business; no timing limit here).
        assert on_time["schedule_seconds"] > 0 and on_time["worker_cpu_seconds"] > 0, name
        assert math.isfinite(on_time["memory_kb_per_waiting_monitor"]), name
        assert result["saturated"]["checks_done"] == result["saturated"]["checks_expected"] == 4 * 10
        assert result["saturated"]["checks_per_second"] > 0
        assert result["long"]["checks_done"] == 30 and result["long"]["late_check"] == 30
        assert result["long"]["cpu_ms_per_check_early"] > 0 and result["long"]["cpu_ms_per_check_late"] > 0
        assert result["peak_worker_mb"] > 0
    # The scheduler runs in a process of its own only in the project's stacks.
    for name in ("project", "project-in-memory", "project-sdk-loop", "scale-out", "protocol-floor"):
        assert smoke_run["stacks"][name]["on_time"][0]["scheduler_cpu_seconds"] > 0
        assert smoke_run["stacks"][name]["peak_scheduler_mb"] > 0
    assert smoke_run["stacks"]["reference"]["peak_scheduler_mb"] is None
    # The scale-out workers are processes of their own: their CPU is counted, the bench's is not.
    assert smoke_run["stacks"]["scale-out"]["on_time"][-1]["worker_cpu_seconds"] > 0
    # A durable check runs after its timer fired, so it is never early: the due time reached the check.
    for name in ("project", "project-sdk-loop", "scale-out", "protocol-floor", "reference"):
        assert smoke_run["stacks"][name]["on_time"][0]["lateness_p50_seconds"] > 0
    assert set(smoke_run["ratios"]) == {
        "project/reference saturated checks/s",
        "project/reference p99 lateness",
        "scale-out/reference saturated checks/s",
        "scale-out/reference p99 lateness",
        "project/floor saturated checks/s",
        "project/floor p99 lateness",
        "project/project-in-memory CPU ms per check",
        "project/protocol-floor CPU ms per check",
        "project-sdk-loop/project CPU ms per check",
    }
    cpu_ratios = [name for name in smoke_run["ratios"] if name.endswith("CPU ms per check")]
    for ratio in cpu_ratios:
        assert math.isfinite(smoke_run["ratios"][ratio]) and smoke_run["ratios"][ratio] > 0


def test_the_json_reads_back_into_the_typed_results_unchanged(smoke_run: dict) -> None:
    typed = bench.BenchRun.from_json(smoke_run)
    assert typed.stacks["project"].long.cpu_growth == smoke_run["stacks"]["project"]["long"]["cpu_growth"]
    assert json.dumps(typed.to_json(), sort_keys=True) == json.dumps(smoke_run, sort_keys=True)  # NaN-safe


def test_without_json_it_prints_the_table() -> None:
    """A real run of two stacks at the smallest sizes, as a person reads it: header, table, ratios."""
    sizes = ["--monitors", "4", "--interval", "0.2", "--checks", "2", "--saturated-monitors", "2"]
    sizes += ["--long-monitors", "1", "--long-checks", "12", "--reference-long-checks", "12"]
    done = subprocess.run(
        [sys.executable, "-m", "monitoring.bench", *sizes, "--stacks", "floor,project"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["measuring floor ...", "measuring project ..."]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+ cores, .*Python 3", lines[2])
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| figure | floor | project |"
    rows = {row.split(" | ")[0].removeprefix("| "): row.split(" | ")[1:] for row in table[1:]}
    lateness = rows["lateness p50 / p99 / max, ms (4 monitors x 2 checks at 0.2 s)"]
    assert all(re.fullmatch(r"\d+ / \d+ / \d+ ?\|?", cell.strip(" |")) for cell in lateness), lateness
    assert "saturated checks/s (2 monitors)" in rows and "worker CPU ms per check at check 10 / 12" in rows
    assert [line.split(":")[0] for line in lines if line.startswith("- ")] == [
        "- project/floor saturated checks/s",
        "- project/floor p99 lateness",
    ]


def test_readme_table_is_regenerated_between_its_markers(smoke_run: dict, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench.README_START}\nold\n{bench.README_END}\nafter\n")
    bench.update_readme(
        bench.BenchRun.from_json(smoke_run), readme, "python -m monitoring.bench --update-readme"
    )
    text = readme.read_text()
    assert "old" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert HEADER in text
    assert "| p99 lateness by number of monitors, ms | 3: " in text
    assert "saturated checks/s" in text and smoke_run["date"] in text
    with pytest.raises(RuntimeError, match="no <!-- bench-results:start -->"):
        bench.update_readme(bench.BenchRun.from_json(smoke_run), _plain(tmp_path), "cmd")


def test_the_project_readme_has_the_results_block_and_the_command_that_made_it() -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text[text.index(bench.README_START) : text.index(bench.README_END)]
    (command,) = re.findall(r"with `(python -m monitoring.bench [^`]*--update-readme)`", block)
    assert f"\n{command}  " in text, "the command that made the table is one the README lists"


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.md"
    path.write_text("# no markers\n")
    return path


def test_a_stack_process_stopped_with_sigterm_leaves_no_scheduler_behind() -> None:
    """``timeout`` (or a person) stopping a stack mid-run: its scheduler process stops with it."""
    settings = json.dumps({"monitors": 3, "interval": 60, "checks": 2})  # long enough to be stopped mid-run
    stack = subprocess.Popen(
        [sys.executable, "-m", "monitoring.bench", "stack", "project", "--settings", settings],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # only guards a hang
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            children = child_pids(stack.pid)
            time.sleep(0.1)
        assert children, "the stack started its scheduler process"
        command = command_line_once_started(children[0], "scheduler")
        port = int(command[command.index("--port") + 1])
        client = create_client(local_connection(f"http://127.0.0.1:{port}"))
        query = OrchestrationQuery(instance_id_prefix="ontime", fetch_inputs_and_outputs=False)
        started: list[object] = []
        while not started and time.monotonic() < deadline:  # mid-run: its monitors are on the scheduler
            with contextlib.suppress(grpc.RpcError):  # not answering yet
                started = list(client.get_all_orchestration_states(query))
            time.sleep(0.1)
        assert started, "the stack started its monitors"
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=120) == 128 + signal.SIGTERM
        for pid in children:
            assert wait_until_gone(pid, limit=120), f"scheduler process {pid} outlived its stack"
    finally:
        stack.kill()
        stack.wait()


def test_the_batch_stack_runs_every_phase_as_one_batch_and_counts_every_check(tmp_path: Path) -> None:
    """``--stacks project-batch`` (asked for by name only): each phase's monitors as the jobs of one batch."""
    done = subprocess.run(
        [sys.executable, "-m", "monitoring.bench", *TINY, "--stacks", "project-batch", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MONITORING_STATE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
    result = run["stacks"]["project-batch"]
    for phase in (*result["on_time"], result["saturated"], result["long"]):
        assert phase["checks_done"] == phase["checks_expected"] > 0
        assert phase["scheduler_cpu_seconds"] > 0


def test_the_waiting_run_starts_checks_restarts_and_writes_its_own_readme_block(tmp_path: Path) -> None:
    """``--waiting N`` (tiny here): monitors started at once, each makes its first check and waits; a
    restart of the scheduler on its file is followed by a new monitor's check. Its table has its own block."""
    readme = tmp_path / "README.md"
    readme.write_text(
        f"{bench.README_START}\nstacks\n{bench.README_END}\n{bench.WAITING_START}\nold\n{bench.WAITING_END}\n"
    )
    command = ["--waiting", "5,3", "--waiting-interval", "10", "--json", "--update-readme", str(readme)]
    done = subprocess.run(
        [sys.executable, "-m", "monitoring.bench", *command],
        capture_output=True,
        text=True,
        timeout=600,  # only guards a hang
        env={**os.environ, "MONITORING_STATE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
    runs = [bench.WaitingResult.from_json(size) for size in run["waiting"]]
    assert [size.monitors for size in runs] == [3, 5], "smallest first"
    for size in runs:
        assert size.first_checks_done == size.monitors, "each monitor's first check, once"
        assert size.interval_seconds == 10 and size.starts_per_second > 0
        assert size.state_file_kb_per_monitor > 0
        assert 0 < size.restart_serving_seconds < size.restart_seconds
        assert all(math.isfinite(getattr(size, f.name)) for f in dataclasses.fields(size))
    text = readme.read_text()
    assert text.startswith(f"{bench.README_START}\nstacks\n{bench.README_END}\n"), "the stacks' block stays"
    assert "old" not in text and "| figure | 3 monitors | 5 monitors |" in text
    assert f"with `python -m monitoring.bench {' '.join(command)}`" in text


def test_the_project_readme_has_the_waiting_block_and_the_command_that_made_it() -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text[text.index(bench.WAITING_START) : text.index(bench.WAITING_END)]
    (command,) = re.findall(r"with `(python -m monitoring.bench --waiting [^`]*--update-readme)`", block)
    assert f"\n{command}  " in text, "the command that made the table is one the README lists"
