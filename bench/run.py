"""Benchmarks of the local cloud and the first scenario: `make bench`.

Each figure is measured on a local cloud of its own (own home folder and
port), printed as a table, and never asserted: the README's performance
section records the latest figures.

    python -m bench.run [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("00-getting-started.ipynb", "01-compromised-ec2-instance.ipynb")
SCENARIO_1 = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"


def _fresh_home() -> None:
    os.environ["LABKIT_HOME"] = tempfile.mkdtemp(prefix="labkit-bench-")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        os.environ["LABKIT_PORT"] = str(probe.getsockname()[1])


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure_start() -> dict[str, float]:
    """Start a local cloud; time until it answers and until it is warm."""
    from labkit.local import server

    _fresh_home()
    start = _timed(server.ensure_running)
    log = Path(os.environ["LABKIT_HOME"]) / server.LOG_FILE
    warm = float("nan")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"warmed up in ([\d.]+) s", log.read_text())
        if found:
            warm = float(found.group(1))
            break
        time.sleep(0.2)
    return {
        "local cloud start (answers)": start,
        "local cloud warm-up (background)": warm,
    }


def measure_scenario_1() -> dict[str, float]:
    """Deploy, then step the clock until the Scenario 1 instance is isolated."""
    import labkit
    from labkit import inventory

    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    started = time.perf_counter()
    outputs = labkit.deploy_stack(lab, detector_id=detector_id, progress=False)
    deploy = time.perf_counter() - started
    labkit.activate_threat_list(lab, outputs)

    instance = outputs["Scenario1InstanceId"]
    forensic = [outputs["ForensicSecurityGroupId"]]
    first_ping = time.perf_counter()
    isolating_step = float("nan")
    for _ in range(30):
        step_started = time.perf_counter()
        lab.advance(1)
        groups = inventory.instance_security_groups(lab, instance)["group_id"].tolist()
        if groups == forensic:
            isolating_step = time.perf_counter() - step_started
            break
    to_isolation = time.perf_counter() - first_ping
    report = inventory.log_lines(
        lab, "/aws/lambda/Security-Workshop-Remediation-EC2-MaliciousIPCaller"
    )
    durations = [
        float(m) for m in re.findall(r"\tDuration: ([\d.]+) ms", "\n".join(report))
    ]
    return {
        "deploy Security-Workshop (58 resources, no e-mail)": deploy,
        "Scenario 1: finding raised to isolation done (server log)": _finding_to_isolation(),
        "local cloud peak memory after Scenario 1 (MiB)": _peak_memory_mib(),
        "Scenario 1: first ping to isolated instance (wall)": to_isolation,
        "Scenario 1: the simulated minute that found and isolated": isolating_step,
        "Scenario 1: isolation Lambda duration": durations[0] / 1000
        if durations
        else float("nan"),
    }


def _finding_to_isolation() -> float:
    """Seconds from the finding's creation to the isolation function's return."""
    from labkit.local import server

    log = (Path(os.environ["LABKIT_HOME"]) / server.LOG_FILE).read_text()
    stamp = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
    raised = re.search(stamp + r" INFO \S+: new finding " + SCENARIO_1, log)
    done = re.search(
        stamp + r" INFO \S+: invoked Security-Workshop-Remediation-EC2", log
    )
    if raised is None or done is None:
        return float("nan")
    moments = [_parse_stamp(found.group(1)) for found in (raised, done)]
    return moments[1] - moments[0]


def _peak_memory_mib() -> float:
    """The local cloud process's peak resident memory (VmHWM), in MiB."""
    from labkit.local import server

    status = Path(f"/proc/{server.status()['pid']}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def _parse_stamp(text: str) -> float:
    from datetime import datetime

    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _run_notebook(name: str) -> float:
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    return _timed(client.execute)


def measure_notebooks() -> dict[str, float]:
    """Run notebooks 00 and 01 on a fresh local cloud, then 01 alone on another."""
    from labkit.local import server

    server.stop()
    _fresh_home()
    timings = {f"notebook {name}": _run_notebook(name) for name in NOTEBOOKS}
    timings["notebooks 00 + 01 end to end"] = sum(timings.values())
    server.stop()
    # A student who opens notebook 01 first: prepare_lab does 00's work.
    _fresh_home()
    timings[f"notebook {NOTEBOOKS[1]} alone, fresh local cloud"] = _run_notebook(
        NOTEBOOKS[1]
    )
    server.stop()
    return timings


def main() -> None:
    """Run every benchmark ``--repeat`` times and print the medians."""
    parser = argparse.ArgumentParser(prog="bench.run")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from labkit.local import server

    runs: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        try:
            for name, value in {**measure_start(), **measure_scenario_1()}.items():
                runs.setdefault(name, []).append(value)
        finally:
            server.stop()
        for name, value in measure_notebooks().items():
            runs.setdefault(name, []).append(value)

    width = max(len(name) for name in runs)
    print(f"{'measure'.ljust(width)}      median  runs")
    for name, values in runs.items():
        print(f"{name.ljust(width)}  {statistics.median(values):10.2f}  {len(values)}")


if __name__ == "__main__":
    main()
