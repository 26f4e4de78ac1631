"""Tests of the local cloud process: start, reuse, refusals and the clock."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from labkit import cli
from labkit.errors import ConfigError, LocalCloudError, PortInUseError
from labkit.local import control, server, settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lab home, so no real record is touched."""
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def free_port() -> int:
    """A port on loopback that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def test_a_bad_port_argument_is_named_as_the_argument(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad --port is blamed on the argument, not on LABKIT_PORT."""
    monkeypatch.setenv("LABKIT_PORT", "4751")
    with pytest.raises(ConfigError) as caught:
        server.ensure_running(port=99999)
    message = str(caught.value)
    assert message.startswith("port must be a number from 1024 to 65535, got 99999")
    assert "LABKIT_PORT" not in message


def test_a_bad_labkit_port_says_how_to_fall_back(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad LABKIT_PORT names the variable and its default."""
    monkeypatch.setenv("LABKIT_PORT", "80")
    with pytest.raises(ConfigError, match="LABKIT_PORT .*got '80'.*unset it for 4599"):
        server.ensure_running()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process, ended when the test ends."""
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def lookalike() -> Iterator[subprocess.Popen[bytes]]:
    """A sleeping process whose command line names the server module."""
    code = "import time; time.sleep(30)"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "-m", server.SERVER_MODULE, "--port", "1"]
    )
    yield process
    process.kill()
    process.wait()


def _record(home: Path, **record: object) -> None:
    (home / server.STATE_FILE).write_text(json.dumps(record))


def test_stop_leaves_an_unrelated_process_alone(
    home: Path, sleeper: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """A record whose pid is another program's is cleared; the program runs on."""
    _record(home, pid=sleeper.pid, port=1)

    with caplog.at_level(logging.INFO, "labkit.local.server"):
        assert server.stop() is False

    assert sleeper.poll() is None
    assert not (home / server.STATE_FILE).exists()
    assert f"pid {sleeper.pid}, that pid now belongs to another program" in caplog.text


def test_down_says_it_left_an_unrelated_process_alone(
    home: Path, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`labkit local down` names the stale record it removed and stops nothing."""
    _record(home, pid=sleeper.pid, port=1)

    assert cli.main(["local", "down"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"removed a stale local cloud record naming pid {sleeper.pid}: that pid "
        "now belongs to another program, which was left alone",
        "local cloud was not running",
    ]
    assert sleeper.poll() is None


def test_ensure_running_clears_a_record_naming_another_program(
    home: Path, sleeper: subprocess.Popen[bytes], held_port: int
) -> None:
    """Reused pid: the record goes and the start goes on (here to a taken port)."""
    _record(home, pid=sleeper.pid, port=held_port)

    with pytest.raises(PortInUseError, match=f"port {held_port} "):
        server.ensure_running(port=held_port)

    assert sleeper.poll() is None
    assert not (home / server.STATE_FILE).exists()
    assert server.status()["running"] is False


def test_stop_refuses_a_lookalike_with_another_start_time(
    home: Path, lookalike: subprocess.Popen[bytes]
) -> None:
    """The server module on the command line is not enough: start times differ."""
    _record(home, pid=lookalike.pid, port=1, started="1")

    assert server.stop() is False
    assert lookalike.poll() is None
    assert not (home / server.STATE_FILE).exists()


def test_stop_ends_a_recorded_local_cloud_process(
    home: Path, lookalike: subprocess.Popen[bytes]
) -> None:
    """A process running the server module, started when recorded, is ended."""
    started = server._start_time(lookalike.pid)
    _record(home, pid=lookalike.pid, port=1, started=started)

    assert server.stop() is True

    assert lookalike.wait(timeout=10) != 0
    assert not (home / server.STATE_FILE).exists()
    assert server.stop() is False


def test_unresponsive_local_cloud_is_named_then_stopped(
    home: Path, free_port: int
) -> None:
    """A real local cloud that stops answering gets the advice; down ends it."""
    url = server.ensure_running(port=free_port)
    pid = json.loads((home / server.STATE_FILE).read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(LocalCloudError, match=f"pid {pid}.*labkit local down"):
            server.ensure_running(port=free_port)
    finally:
        stopped = server.stop()

    assert stopped is True
    assert not (home / server.STATE_FILE).exists()
    assert server.status()["running"] is False
    with pytest.raises(LocalCloudError):
        control.request(url, "status", timeout=2)


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
