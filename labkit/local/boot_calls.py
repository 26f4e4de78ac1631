"""The ``aws`` CLI commands an instance's user data runs once, as API calls.

The commands that run once (the user data's, and those of the programs it
starts, as :mod:`labkit.local.shell_script` reads them) are read by the AWS
CLI's own parser (:mod:`labkit.local.aws_cli`) and played at the instance's
first lab minute, in order, signed with its instance-profile role's keys and
from its address. Every other ``aws`` command of the scripts (in a loop, a
function, after ``exit``, run through ``sudo``, with shell expansion...) is
named in a warning, with why it is not played.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from botocore.exceptions import ClientError, ParamValidationError

from labkit.errors import LocalCloudError
from labkit.local import aws_cli, instance_roles, internal, shell_script
from labkit.local.workloads import Instance, Workload, finds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CliStep:
    """One ``aws`` command that runs once: its call, line and ``&&`` list.

    Attributes:
        call: the API call the command makes.
        line: the user data line it is on.
        chain: its program and ``&&`` list; a failed call skips the rest
            of its list.
        errexit: a failed call ends its program (``set -e``).
    """

    call: aws_cli.ApiCall
    line: int
    chain: tuple[int, int]
    errexit: bool


@dataclass(frozen=True)
class CliCalls(Workload):
    """The ``aws`` CLI commands the scripts run once, at boot, in order.

    As the CLI on the instance would, each call is signed with the
    temporary keys the instance's metadata service hands out for its
    instance-profile role, and comes from the instance's address. A failed
    call is logged; bash then skips the rest of its ``&&`` list, and with
    ``set -e`` ends its script, and so does the player.
    """

    steps: tuple[CliStep, ...]
    kind = "aws-cli"

    def boot(self, instance: Instance, now: datetime, step: timedelta) -> None:
        failed: set[tuple[int, int]] = set()
        ended: set[int] = set()
        for cli in self.steps:
            if cli.chain[0] in ended or cli.chain in failed:
                logger.info(
                    "%s: user data line %s does not run: a command before it failed",
                    instance.instance_id,
                    cli.line,
                )
            elif not _call(instance, cli):
                failed.add(cli.chain)
                if cli.errexit:
                    ended.add(cli.chain[0])


def _call(instance: Instance, cli: CliStep) -> bool:
    """Make one boot call as the instance's role; say whether it succeeded."""
    what = f"{cli.call.service} {cli.call.operation} (user data line {cli.line})"
    credentials = instance_roles.role_credentials(instance)
    if credentials is None:
        logger.warning(
            "%s has no instance-profile role: %s fails with "
            "'Unable to locate credentials'",
            instance.instance_id,
            what,
        )
        return False
    client = internal.client(
        cli.call.service,
        cli.call.region or instance.region,
        credentials=credentials,
        source_ip=instance.source_ip,
    )
    try:
        getattr(client, cli.call.method)(**cli.call.params)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        logger.warning("%s: %s at boot failed: %s", instance.instance_id, what, code)
        return False
    except ParamValidationError:
        logger.warning("%s: %s has invalid parameters", instance.instance_id, what)
        return False
    logger.info("%s ran %s at boot", instance.instance_id, what)
    return True


@finds("aws-cli")
def find_cli_calls(user_data: str) -> list[Workload]:
    """Return the user data's boot calls as one workload (none if it has none)."""
    return list(_cli_calls(user_data))


@functools.lru_cache(maxsize=64)
def _cli_calls(user_data: str) -> tuple[Workload, ...]:
    commands: list[tuple[int, shell_script.Command]] = []
    for index, program in enumerate(shell_script.read_programs(user_data)):
        where = (
            ""
            if index == 0
            else f" (of {program.name}, started on line {program.line})"
        )
        for command, reason in program.skipped():
            if _runs_aws(command):
                # After an exit it does not run in AWS either: no warning.
                level = logging.INFO if program.after_end(command) else logging.WARNING
                _not_played(command, reason + where, level)
        for command in program.runs():
            problem = _cli_problem(command)
            if problem:
                _not_played(command, problem + where)
            elif command.name == "aws":
                commands.append((index, command))
    try:
        readings = aws_cli.read_commands([c.words for _, c in commands])
    except LocalCloudError as error:
        logger.warning("the user data's aws commands are not played: %s", error)
        return ()
    steps = []
    for (index, command), reading in zip(commands, readings, strict=True):
        if isinstance(reading, Exception):
            _not_played(command, str(reading))
        elif reading is not None:
            chain = (index, command.chain)
            steps.append(CliStep(reading, command.line, chain, command.errexit))
    return (CliCalls(tuple(steps)),) if steps else ()


def _runs_aws(command: shell_script.Command) -> bool:
    return "aws" in (PurePosixPath(word).name for word in command.words)


def _cli_problem(command: shell_script.Command) -> str | None:
    """Why a command that runs once is an ``aws`` call not played, if it is."""
    if command.name != "aws":
        if _runs_aws(command):
            return f"aws run through {command.name} is not supported; call aws directly"
        return None
    if command.expands:
        return "shell expansion ($, `, globs, ~) is not supported"
    if command.environment:
        names = ", ".join(command.environment)
        return f"it sets {names} for the CLI, which is not supported"
    return None


def _not_played(
    command: shell_script.Command, reason: str, level: int = logging.WARNING
) -> None:
    logger.log(
        level, "user data line %s is not played locally: %s", command.line, reason
    )
