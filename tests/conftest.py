"""Fixtures shared by the test suite.

Every test runs behind a guard that refuses connections beyond loopback: the
lab's addresses are simulated and nothing may dial them, nor real AWS.
"""

from __future__ import annotations

import io
import json
import os
import socket
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.local import guard


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection that leaves the machine."""
    monkeypatch.setattr(socket.socket, "connect", guard.guarded_connect)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's own AWS settings out of every test."""
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("LABKIT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the real local cloud process once for the session; stop it after."""
    from labkit.local import server

    home = os.environ.get("LABKIT_HOME") or str(tmp_path_factory.mktemp("labkit-home"))
    os.environ["LABKIT_HOME"] = home
    # The local cloud then checks each result it serves against its shape.
    os.environ["LABKIT_STRICT_SHAPES"] = "1"
    if not os.environ.get("LABKIT_PORT"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["LABKIT_PORT"] = str(probe.getsockname()[1])
    url = server.ensure_running()
    yield url
    server.stop()


@pytest.fixture
def fresh_cloud(local_cloud: str) -> str:
    """The local cloud, reset to empty before the test."""
    request = urllib.request.Request(f"{local_cloud}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass
    return local_cloud


LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture(scope="session")
def make_echo_function() -> Callable[[Any, str], str]:
    """Make a Python Lambda function that returns its event; give its ARN."""

    def make(lab: Any, name: str) -> str:
        role = lab.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
        )
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr(
                "echo.py", "def handler(event, context):\n    return event\n"
            )
        made = lab.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="echo.handler",
            Code={"ZipFile": package.getvalue()},
        )
        return str(made["FunctionArn"])

    return make
