"""Simulated network traffic and the VPC flow-log records it leaves.

Workloads send traffic here. Each connection is checked against the sending
instance's security groups' egress rules, as the VPC would, so an isolated
instance's packets are rejected. At the end of each simulated step the
connections become default-format (version 2) flow-log records, written to
every flow log that covers the instance's interface, subnet or VPC, and kept
for the detector, which reads the same records GuardDuty reads.
"""

from __future__ import annotations

import ipaddress
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from labkit.local import clock, internal, settings
from labkit.local.gateway import RESET_HOOKS

if TYPE_CHECKING:
    from labkit.local.workloads import Instance

logger = logging.getLogger(__name__)

ICMP, TCP, UDP = 1, 6, 17
PROTOCOL_NAMES = {ICMP: "ICMP", TCP: "TCP", UDP: "UDP"}
_RULE_PROTOCOLS = {"icmp": ICMP, "tcp": TCP, "udp": UDP}


@dataclass(frozen=True)
class Flow:
    """One connection summarised over one step, as a flow-log record sees it."""

    instance: Instance
    srcaddr: str
    dstaddr: str
    srcport: int
    dstport: int
    protocol: int
    packets: int
    size: int
    start: datetime
    end: datetime
    action: str

    def record(self, account_id: str) -> str:
        """Return the flow as a default-format (version 2) flow-log line."""
        fields = [
            2,
            account_id,
            self.instance.eni_id,
            self.srcaddr,
            self.dstaddr,
            self.srcport,
            self.dstport,
            self.protocol,
            self.packets,
            self.size,
            int(self.start.timestamp()),
            int(self.end.timestamp()),
            self.action,
            "OK",
        ]
        return " ".join(str(field) for field in fields)


PENDING: list[Flow] = []
STEP_FLOWS: list[Flow] = []


def send(
    instance: Instance,
    dstaddr: str,
    *,
    protocol: int,
    dstport: int,
    packets: int,
    size: int,
    now: datetime,
    step: timedelta,
) -> Flow:
    """Send one step's worth of traffic from ``instance`` to ``dstaddr``."""
    allowed = egress_allowed(instance, dstaddr, protocol, dstport)
    srcport = 0 if protocol == ICMP else 32768 + zlib.crc32(dstaddr.encode()) % 28000
    flow = Flow(
        instance=instance,
        srcaddr=instance.private_ip,
        dstaddr=dstaddr,
        srcport=srcport,
        dstport=dstport,
        protocol=protocol,
        packets=packets,
        size=size,
        start=now - step,
        end=now,
        action="ACCEPT" if allowed else "REJECT",
    )
    PENDING.append(flow)
    return flow


def egress_allowed(instance: Instance, dstaddr: str, protocol: int, port: int) -> bool:
    """Say whether any of the instance's security groups lets the packet out."""
    if not instance.security_group_ids:
        return False
    ec2 = internal.client("ec2", instance.region)
    groups = ec2.describe_security_groups(GroupIds=list(instance.security_group_ids))
    address = ipaddress.ip_address(dstaddr)
    for group in groups["SecurityGroups"]:
        for rule in group.get("IpPermissionsEgress", []):
            if _rule_allows(rule, address, protocol, port):
                return True
    return False


def _rule_allows(rule: dict[str, Any], address: Any, protocol: int, port: int) -> bool:
    rule_protocol = str(rule.get("IpProtocol", "-1")).lower()
    if rule_protocol != "-1":
        number = _RULE_PROTOCOLS.get(rule_protocol)
        if number is None and rule_protocol.isdigit():
            number = int(rule_protocol)
        if number != protocol:
            return False
        if protocol != ICMP and not _port_in(rule, port):
            return False
    ranges = [r["CidrIp"] for r in rule.get("IpRanges", [])]
    ranges += [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in ranges)


def _port_in(rule: dict[str, Any], port: int) -> bool:
    low = rule.get("FromPort", -1)
    high = rule.get("ToPort", -1)
    return low == -1 or low <= port <= high


@clock.on_tick("flow-logs", order=20)
def _write_flow_logs(now: datetime, step: timedelta) -> None:
    STEP_FLOWS[:] = PENDING
    PENDING.clear()
    by_region: dict[str, list[Flow]] = {}
    for flow in STEP_FLOWS:
        by_region.setdefault(flow.instance.region, []).append(flow)
    for region, flows in by_region.items():
        _write_region(region, flows)


def _write_region(region: str, flows: list[Flow]) -> None:
    ec2 = internal.client("ec2", region)
    logs = internal.client("logs", region)
    flow_logs = ec2.describe_flow_logs()["FlowLogs"]
    for flow_log in flow_logs:
        if flow_log.get("LogDestinationType", "cloud-watch-logs") != "cloud-watch-logs":
            continue
        covered = [f for f in flows if flow_log["ResourceId"] in _resources(f)]
        if not covered:
            continue
        group = flow_log["LogGroupName"]
        for eni in sorted({f.instance.eni_id for f in covered}):
            stream = f"{eni}-all"
            _ensure_stream(logs, group, stream)
            events = [
                {
                    "timestamp": int(f.end.timestamp() * 1000),
                    "message": f.record(settings.LOCAL_ACCOUNT_ID),
                }
                for f in covered
                if f.instance.eni_id == eni
            ]
            logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events
            )


def _resources(flow: Flow) -> set[str]:
    instance = flow.instance
    return {instance.eni_id, instance.subnet_id, instance.vpc_id}


def _ensure_stream(logs: Any, group: str, stream: str) -> None:
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        return
    except logs.exceptions.ResourceNotFoundException:
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)


def _reset() -> None:
    PENDING.clear()
    STEP_FLOWS.clear()


RESET_HOOKS.append(_reset)
