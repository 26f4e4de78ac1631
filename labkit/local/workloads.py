"""Instance workloads: what each instance's user data does, run as code.

In AWS an instance runs its user data script once, at its first boot; the
script may start services that then run for as long as the instance does.
Locally nothing boots, so each running instance's user data is read and the
commands the lab knows are played from that instance's addresses: the ones
the script runs itself (``aws`` CLI calls) once, on the instance's first
simulated step, and the recurring ones (``ping``) on every step. A workload
is found by the command it looks for, so an instance does here what its
script would do in AWS, and stops when the instance stops.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from labkit.local import aws_cli, clock, instance_roles, internal, traffic
from labkit.local.gateway import ACTIVE_REGIONS, RESET_HOOKS
from labkit.local.shell_script import boot_commands

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instance:
    """A running instance as its workloads see it."""

    instance_id: str
    region: str
    private_ip: str
    public_ip: str | None
    eni_id: str
    vpc_id: str
    subnet_id: str
    security_group_ids: tuple[str, ...]
    user_data: str
    description: dict[str, Any] = field(hash=False, compare=False)

    @property
    def name(self) -> str:
        """The instance's Name tag, or its id."""
        for tag in self.description.get("Tags", []):
            if tag["Key"] == "Name":
                return str(tag["Value"])
        return self.instance_id

    @property
    def source_ip(self) -> str:
        """The address its calls to AWS endpoints come from.

        An instance in a public subnet reaches them through the internet
        gateway, from its public address (its Elastic IP when it has one).
        """
        return self.public_ip or self.private_ip


class Workload:
    """One activity of an instance: at its boot, on every step, or both."""

    kind = "workload"

    def boot(self, instance: Instance, now: datetime) -> None:
        """Do what the instance's script does once, at its first boot."""

    def act(self, instance: Instance, now: datetime, step: timedelta) -> None:
        """Do one step's worth of the recurring activity."""


Finder = Callable[[str], list[Workload]]
FINDERS: dict[str, Finder] = {}


def finds(kind: str) -> Callable[[Finder], Finder]:
    """Register a function that finds a kind of workload in user data."""

    def register(finder: Finder) -> Finder:
        FINDERS[kind] = finder
        return finder

    return register


@dataclass
class Ping(Workload):
    """``ping [-c N] <address>``: N echo requests a minute (one a second if no -c)."""

    target: str
    count: int = 60
    kind = "ping"

    def act(self, instance: Instance, now: datetime, step: timedelta) -> None:
        packets = max(1, round(self.count * step.total_seconds() / 60))
        traffic.send(
            instance,
            self.target,
            protocol=traffic.ICMP,
            dstport=0,
            packets=packets,
            size=84 * packets,
            now=now,
            step=step,
        )


_PING = re.compile(
    r"^[^#\n]*?\bping\s+((?:-\S+\s+(?:\d+\s+)?)*)(\d{1,3}(?:\.\d{1,3}){3})\b", re.M
)
_COUNT = re.compile(r"-c\s+(\d+)")


@finds("ping")
def _find_pings(user_data: str) -> list[Workload]:
    found: list[Workload] = []
    for options, target in _PING.findall(user_data):
        count = _COUNT.search(options)
        found.append(Ping(target, int(count.group(1)) if count else 60))
    return found


@dataclass(frozen=True)
class CliCall(Workload):
    """An ``aws`` CLI command the script runs at boot, with the role's keys.

    As the CLI on the instance would, the call is signed with the temporary
    keys the instance's metadata service hands out for its instance-profile
    role, and comes from the instance's address. A failed call is logged and
    the script goes on, as bash goes on without ``set -e``.
    """

    call: aws_cli.ApiCall
    line: int
    kind = "aws-cli"

    def boot(self, instance: Instance, now: datetime) -> None:
        what = f"{self.call.service} {self.call.operation}"
        credentials = instance_roles.role_credentials(instance)
        if credentials is None:
            logger.warning(
                "%s has no instance-profile role: %s (user data line %s) "
                "fails with 'Unable to locate credentials'",
                instance.instance_id,
                what,
                self.line,
            )
            return
        client = internal.client(
            self.call.service,
            self.call.region or instance.region,
            credentials=credentials,
            source_ip=instance.source_ip,
        )
        try:
            getattr(client, self.call.method)(**self.call.params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            logger.warning(
                "%s: %s at boot failed: %s", instance.instance_id, what, code
            )
            return
        except ParamValidationError:
            logger.warning(
                "%s: %s at boot has invalid parameters", instance.instance_id, what
            )
            return
        logger.info("%s ran %s at boot", instance.instance_id, what)


@finds("aws-cli")
def _find_cli_calls(user_data: str) -> list[Workload]:
    return list(_cli_calls(user_data))


@functools.lru_cache(maxsize=64)
def _cli_calls(user_data: str) -> tuple[Workload, ...]:
    found: list[Workload] = []
    for command in boot_commands(user_data):
        if command.words[0].rsplit("/", 1)[-1] != "aws":
            continue
        if command.expands:
            logger.warning(
                "user data line %s is not played locally: "
                "shell expansion ($, `) is not supported",
                command.line,
            )
            continue
        try:
            call = aws_cli.read_command(command.words)
        except (aws_cli.CliUsageError, NotImplementedError) as error:
            logger.warning(
                "user data line %s is not played locally: %s", command.line, error
            )
            continue
        if call is not None:
            found.append(CliCall(call, command.line))
    return tuple(found)


def running_instances(region: str) -> list[Instance]:
    """Describe the running instances of ``region`` with their user data."""
    ec2 = internal.client("ec2", region)
    found = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for described in reservation["Instances"]:
                found.append(_instance(ec2, region, described))
    return found


_USER_DATA: dict[str, str] = {}


def _instance(ec2: Any, region: str, described: dict[str, Any]) -> Instance:
    instance_id = described["InstanceId"]
    if instance_id not in _USER_DATA:
        attribute = ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData"
        )
        raw = attribute.get("UserData", {}).get("Value", "")
        _USER_DATA[instance_id] = base64.b64decode(raw).decode("utf-8", "replace")
    interfaces = described.get("NetworkInterfaces") or [{}]
    groups = tuple(g["GroupId"] for g in described.get("SecurityGroups", []))
    return Instance(
        instance_id=instance_id,
        region=region,
        private_ip=described.get("PrivateIpAddress", ""),
        public_ip=described.get("PublicIpAddress"),
        eni_id=interfaces[0].get("NetworkInterfaceId", ""),
        vpc_id=described.get("VpcId", ""),
        subnet_id=described.get("SubnetId", ""),
        security_group_ids=groups,
        user_data=_USER_DATA[instance_id],
        description=described,
    )


def workloads_of(instance: Instance) -> list[Workload]:
    """Return every workload the instance's user data starts."""
    found: list[Workload] = []
    for finder in FINDERS.values():
        found.extend(finder(instance.user_data))
    return found


# Instances whose user data has run. cloud-init runs it once per instance,
# so a stop and start does not run it again; a new instance does.
_BOOTED: set[str] = set()


@clock.on_tick("workloads", order=10)
def _tick(now: datetime, step: timedelta) -> None:
    for region in sorted(ACTIVE_REGIONS):
        for instance in running_instances(region):
            first = instance.instance_id not in _BOOTED
            _BOOTED.add(instance.instance_id)
            for workload in workloads_of(instance):
                if first:
                    workload.boot(instance, now)
                workload.act(instance, now, step)


def reset() -> None:
    """Forget cached user data and boots (after a reset of the local cloud)."""
    _USER_DATA.clear()
    _BOOTED.clear()


RESET_HOOKS.append(reset)
