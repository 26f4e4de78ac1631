"""An ``aws`` CLI command line read as the one API call it makes.

The command is read by the AWS CLI itself: the project's pinned awscli runs
in a child process (:mod:`labkit.local.aws_cli_parser`) with an empty home
folder and no AWS settings, builds the request as it would on the instance,
and is stopped before sending it. Every form the CLI accepts is read as the
CLI reads it: ``--name=value``, shorthand syntax, JSON, lists, switches,
the CLI's own options (``ec2 run-instances --count``), ``--cli-input-json``,
and paging (``--max-items``, ``--page-size``, ``--starting-token``), which
is read as the first page's call. A command the CLI refuses is refused with
the CLI's own message.

Not played, each with its reason: the high-level ``aws s3`` commands, CLI
commands that are not one API operation (``ec2 wait``, ``logs tail``),
services the local cloud does not serve, ``file://`` and ``fileb://`` values
(the file is on the instance), ``--profile``, ``--endpoint-url`` and
``--no-sign-request``. ``configure``, ``help`` and ``--version`` call no API.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore import xform_name

from labkit.errors import LocalCloudError
from labkit.local import protocol

logger = logging.getLogger(__name__)

# Run by path with ``python -I``: the child imports awscli and nothing of
# labkit, and sees no PYTHON* variables and no user site-packages.
PARSER_SCRIPT = Path(__file__).with_name("aws_cli_parser.py")

# The keys the child's CLI signs its (never sent) request with: the example
# key of the AWS documentation, so that no credential lookup runs.
_PLACEHOLDER_KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
_TIMEOUT_SECONDS = 120


class CliUsageError(ValueError):
    """A command line the AWS CLI itself refuses."""


@dataclass(frozen=True)
class ApiCall:
    """The call an ``aws`` command makes.

    Attributes:
        service: botocore service name, such as ``"ssm"``.
        operation: AWS operation name, such as ``"PutParameter"``.
        params: the request's parameters, by member name.
        region: the region from ``--region``; None without it (the CLI v2 of
            the lab's Amazon Linux 2023 AMI then uses the instance's own).
    """

    service: str
    operation: str
    params: dict[str, Any]
    region: str | None

    @property
    def method(self) -> str:
        """The boto3 client method that makes the call."""
        return xform_name(self.operation)


Reading = ApiCall | None | CliUsageError | NotImplementedError


def read_command(words: Sequence[str]) -> ApiCall | None:
    """Read ``aws <service> <command> [options]`` as the call it makes.

    Args:
        words: the command's words, starting with ``aws`` (or a path to it).

    Returns:
        The call, or None for a command that calls no API (``aws configure``).

    Raises:
        CliUsageError: the CLI refuses the command (unknown option, missing
            required option, value of the wrong type), with its message.
        NotImplementedError: a form of the CLI the local cloud does not play.
    """
    (reading,) = read_commands([words])
    if isinstance(reading, Exception):
        raise reading
    return reading


def read_commands(commands: Sequence[Sequence[str]]) -> list[Reading]:
    """Read several ``aws`` commands at once, in one run of the CLI's process.

    Returns:
        One reading per command, in order: its call, None if it calls no
        API, or the error :func:`read_command` would raise for it.

    Raises:
        CliUsageError: a command does not start with ``aws``.
        LocalCloudError: the CLI's process could not run or answer.
    """
    for words in commands:
        if not words or Path(words[0]).name != "aws":
            raise CliUsageError(
                f"not an aws command: {' '.join(words[:3])!r}; "
                "give the words of 'aws <service> <command> ...'"
            )
    if not commands:
        return []
    replies = _run_parser([list(words[1:]) for words in commands])
    return [_reading(reply) for reply in replies]


def _reading(reply: dict[str, Any]) -> Reading:
    kind = reply.get("kind")
    if kind == "none":
        return None
    if kind == "usage":
        return CliUsageError(str(reply["message"]))
    if kind == "unsupported":
        return NotImplementedError(str(reply["message"]))
    if reply["service"] not in protocol.LAB_SERVICES:
        return NotImplementedError(
            f"aws {reply['command']} is not supported: the local cloud serves "
            f"{', '.join(protocol.LAB_SERVICES)}"
        )
    return ApiCall(
        reply["service"], reply["operation"], dict(reply["params"]), reply["region"]
    )


def _run_parser(commands: list[list[str]]) -> list[dict[str, Any]]:
    """Run the CLI's parser on ``commands`` in a child with an empty home."""
    with tempfile.TemporaryDirectory(prefix="labkit-aws-cli-") as home:
        config = Path(home, ".aws", "config")
        config.parent.mkdir()
        # CLI v2, on the lab's AMI, keeps http(s):// values as text; v1
        # fetches them unless told not to.
        config.write_text("[default]\ncli_follow_urlparam = false\n")
        env = {
            "PATH": os.defpath,
            "HOME": home,
            "LC_ALL": "C.UTF-8",
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(Path(home, ".aws", "credentials")),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            **_PLACEHOLDER_KEYS,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(PARSER_SCRIPT)],
                input=json.dumps({"commands": commands}),
                capture_output=True,
                text=True,
                encoding="utf-8",
                env=env,
                cwd=home,
                timeout=_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise LocalCloudError(f"the aws CLI parser did not run: {error}") from error
    try:
        replies = json.loads(done.stdout)
    except json.JSONDecodeError:
        replies = None
    if done.returncode != 0 or not isinstance(replies, list):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise LocalCloudError(
            f"the aws CLI parser failed (status {done.returncode}): {tail[0]}"
        )
    return replies
