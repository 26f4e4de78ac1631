"""Instance workloads: what each instance's user data does, run as code.

In AWS an instance runs its user data script. Locally nothing boots, so each
running instance's user data is read and every command the lab knows is
played once per simulated step, from that instance's addresses. A workload
is found by the command it looks for, so an instance does here what its
script would do in AWS, and stops when the instance stops.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from labkit.local import clock, internal, traffic
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


class Workload:
    """One recurring activity of an instance."""

    kind = "workload"

    def act(self, instance: Instance, now: datetime, step: timedelta) -> None:
        """Do one step's worth of the activity."""
        raise NotImplementedError(f"{type(self).__name__} does not act")


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


@clock.on_tick("workloads", order=10)
def _tick(now: datetime, step: timedelta) -> None:
    for region in sorted(ACTIVE_REGIONS):
        for instance in running_instances(region):
            for workload in workloads_of(instance):
                workload.act(instance, now, step)


def reset() -> None:
    """Forget cached user data (after a reset of the local cloud)."""
    _USER_DATA.clear()


RESET_HOOKS.append(reset)
