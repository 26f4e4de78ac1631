"""Tests of the labkit command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from labkit import cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lab home with no local cloud recorded."""
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    return tmp_path


def test_advance_refuses_going_back_before_starting_anything(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative advance is refused in plain words, and no cloud is started."""
    assert cli.main(["local", "advance", "-5"]) == 1
    error = capsys.readouterr().err
    assert "minutes must be between 0 and 10080 (got -5)" in error
    assert "{" not in error
    assert not (home / "local-cloud.json").exists()


def test_advance_refuses_more_than_a_week_in_one_step(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Too long a span is refused with a way forward, not "moves forward"."""
    assert cli.main(["local", "advance", "100000"]) == 1
    error = capsys.readouterr().err
    assert "(got 100000): advance in several steps" in error
    assert "only moves forward" not in error


def test_advance_does_not_start_a_new_cloud(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no cloud running, advance says so instead of starting an empty one."""
    assert cli.main(["local", "advance", "1"]) == 1
    error = capsys.readouterr().err
    assert "the local cloud is not running" in error
    assert "labkit local up" in error
    assert not (home / "local-cloud.json").exists()


def test_advance_moves_the_running_clock(
    local_cloud: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a running cloud, advance prints the clock a minute later."""
    from labkit.local import control

    before = control.now(local_cloud)
    assert cli.main(["local", "advance", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    moved = datetime.fromisoformat(printed["now"]) - datetime.fromisoformat(
        printed["from"]
    )
    assert moved >= timedelta(minutes=1)
    assert datetime.fromisoformat(printed["from"]) >= before


def test_down_when_nothing_runs(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stopping a cloud that is not running says so and succeeds."""
    assert cli.main(["local", "down"]) == 0
    assert capsys.readouterr().out.strip() == "local cloud was not running"


def test_status_when_nothing_runs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Status prints JSON saying the cloud is not running and where its log is."""
    assert cli.main(["local", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {"running": False, "log": str(home / "local-cloud.log")}


def test_up_reports_where_it_runs(
    local_cloud: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`labkit local up` on a running cloud names its endpoint."""
    assert cli.main(["local", "up"]) == 0
    assert capsys.readouterr().out.strip() == f"local cloud running at {local_cloud}"


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown action exits with argparse's usage error."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["local", "explode"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_status_into_a_closed_pipe_is_quiet(home: Path) -> None:
    """`labkit local status | true` ends without a BrokenPipeError traceback."""
    script = "import labkit.cli; labkit.cli.run()"
    reader = subprocess.Popen(
        f"{sys.executable} -c '{script}' local status | true",
        shell=True,
        stderr=subprocess.PIPE,
        env={**os.environ, "LABKIT_HOME": str(home)},
    )
    _, errors = reader.communicate(timeout=60)
    assert b"BrokenPipeError" not in errors
    assert b"Traceback" not in errors
