"""Tests of the local cloud process: start, reuse, refusals and the clock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from labkit.errors import ConfigError, LocalCloudError, PortInUseError
from labkit.local import control, server, settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lab home, so no real record is touched."""
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on loopback that another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_ensure_running_refuses_a_taken_port(home: Path, held_port: int) -> None:
    """A port held by another program is named, with the way to choose another."""
    with pytest.raises(PortInUseError, match=f"port {held_port} .*LABKIT_PORT"):
        server.ensure_running(port=held_port)


@pytest.mark.parametrize("port", ["http", "80", "70000"])
def test_ensure_running_refuses_a_bad_port(
    home: Path, monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    """A port that is not a number from 1024 to 65535 is a ConfigError."""
    monkeypatch.setenv("LABKIT_PORT", port)
    with pytest.raises(ConfigError, match=repr(port)):
        server.ensure_running()


def test_ensure_running_reports_an_unresponsive_process(
    home: Path, held_port: int
) -> None:
    """A recorded live process that does not answer is named, with the fix."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        record = {"pid": sleeper.pid, "port": held_port}
        (home / server.STATE_FILE).write_text(json.dumps(record))
        with pytest.raises(
            LocalCloudError, match=f"pid {sleeper.pid}.*labkit local down"
        ):
            server.ensure_running()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_ends_a_recorded_process(home: Path) -> None:
    """`labkit local down` ends the recorded process and forgets it."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    (home / server.STATE_FILE).write_text(json.dumps({"pid": sleeper.pid, "port": 1}))
    assert server.stop() is True
    assert sleeper.wait(timeout=10) != 0
    assert not (home / server.STATE_FILE).exists()
    assert server.stop() is False


def test_status_when_not_running(home: Path) -> None:
    """Status says the cloud is not running and where its log is."""
    info = server.status()
    assert info["running"] is False
    assert info["log"].startswith(str(home))


def test_local_cloud_answers_boto3_and_is_reused(local_cloud: str) -> None:
    """The process answers AWS calls, and a second start reuses it."""
    ec2 = boto3.client(
        "ec2",
        region_name=settings.DEFAULT_REGION,
        endpoint_url=local_cloud,
        aws_access_key_id=settings.LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=settings.LOCAL_SECRET_ACCESS_KEY,
    )
    assert ec2.describe_regions()["Regions"]
    assert server.ensure_running() == local_cloud
    assert server.status()["running"] is True


def test_clock_moves_only_forward(local_cloud: str) -> None:
    """Advancing moves lab time by the minutes asked; going back is refused."""
    before = control.now(local_cloud)
    answer = control.advance(local_cloud, 5)
    after = control.now(local_cloud)
    assert answer["steps"] == 5
    assert 300 <= (after - before).total_seconds() < 330
    with pytest.raises(LocalCloudError, match="only moves forward"):
        control.advance(local_cloud, -1)
