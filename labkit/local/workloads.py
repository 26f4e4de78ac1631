"""Instance workloads: what each instance's user data does, run as code.

In AWS an instance runs its user data script once, at its first boot; the
script may start services that then run for as long as the instance does.
Locally nothing boots, so each running instance's user data is read (by
:mod:`labkit.local.shell_script`, which also finds the programs it starts)
and the commands the lab knows are played from that instance's addresses:
those that run once, on the instance's first simulated step (``aws`` CLI
calls, in :mod:`labkit.local.boot_calls`; a ``ping -c N``), and those that
repeat, in a started program's loop (``ping``), on every step. A workload
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

from labkit.local import clock, internal, shell_script, traffic
from labkit.local.gateway import ACTIVE_REGIONS, RESET_HOOKS

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

    def boot(self, instance: Instance, now: datetime, step: timedelta) -> None:
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


@dataclass(frozen=True)
class Ping(Workload):
    """``ping`` from the instance: packets once at boot, or a steady rate.

    Attributes:
        target: the address pinged.
        per_minute: echo requests a minute, for as long as the instance runs.
        at_boot: echo requests sent once, at boot.
    """

    target: str
    per_minute: float = 0.0
    at_boot: int = 0
    kind = "ping"

    def boot(self, instance: Instance, now: datetime, step: timedelta) -> None:
        if self.at_boot:
            self._send(instance, self.at_boot, now, step)

    def act(self, instance: Instance, now: datetime, step: timedelta) -> None:
        if self.per_minute:
            minutes = step.total_seconds() / 60
            self._send(instance, max(1, round(self.per_minute * minutes)), now, step)

    def _send(
        self, instance: Instance, packets: int, now: datetime, step: timedelta
    ) -> None:
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


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# ping options whose value is the next word (or the rest of the word).
_PING_VALUES = set("cisWwtIpQlM")


@finds("ping")
def _find_pings(user_data: str) -> list[Workload]:
    """Pings of every program (see shell_script): once, or repeated in loops.

    A ping that runs once sends its ``-c`` count at boot; without ``-c`` it
    never ends and pings once a second (``-i`` seconds). A ping in a loop
    repeats: its count every round, a round lasting the ping (count times
    interval) and the loop's ``sleep`` commands.
    """
    return list(_pings(user_data))


@functools.lru_cache(maxsize=64)
def _pings(user_data: str) -> tuple[Workload, ...]:
    found: list[Workload] = []
    for program in shell_script.read_programs(user_data):
        for command in program.commands:
            if command.name == "ping":
                ping = _ping(program, command)
                if isinstance(ping, Ping):
                    found.append(ping)
                else:
                    logger.info(
                        "user data line %s: ping is not played: %s", command.line, ping
                    )
    return tuple(found)


def _ping(program: shell_script.Program, command: shell_script.Command) -> Ping | str:
    """The ping ``command`` makes in ``program``, or why it is not played."""
    count, interval, target = _ping_options(command.words)
    if command.expands or not _IPV4.fullmatch(target):
        return "shell expansion or a host name is not supported"
    repeats = program.repeats(command)
    if not repeats and command not in program.runs():
        return dict(program.skipped()).get(command, "it does not run")
    if count is None:
        return Ping(target, per_minute=60 / interval)
    if repeats:
        seconds = count * interval + program.sleep_seconds(command.loop)
        return Ping(target, per_minute=count * 60 / seconds)
    return Ping(target, at_boot=count)


def _ping_options(words: tuple[str, ...]) -> tuple[int | None, float, str]:
    """Return ping's ``-c`` count (None without), ``-i`` interval and target."""
    count, interval, target, index = None, 1.0, "", 1
    while index < len(words):
        word = words[index]
        flag, value = word[1:2], word[2:]
        if word.startswith("-") and flag in _PING_VALUES and not value:
            value = words[index + 1] if index + 1 < len(words) else ""
            index += 1
        if not word.startswith("-"):
            target = word
        elif flag == "c" and value.isdigit():
            count = int(value)
        elif flag == "i" and re.fullmatch(r"\d+(\.\d+)?", value):
            interval = max(float(value), 0.002)
        index += 1
    return count, interval, target


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
                    workload.boot(instance, now, step)
                workload.act(instance, now, step)


def reset() -> None:
    """Forget cached user data and boots (after a reset of the local cloud)."""
    _USER_DATA.clear()
    _BOOTED.clear()


RESET_HOOKS.append(reset)
