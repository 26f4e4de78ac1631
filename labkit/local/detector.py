"""The local GuardDuty detector: a registry of rules, one per finding type.

Each simulated step the detector reads what the lab's activity left in its
data sources (the flow-log records of the step; CloudTrail records join them
for the identity scenarios), asks every rule whether a record shows its
threat, and records a finding for each match in the findings store. The
store keeps one finding per fingerprint and raises its count on repeats;
publishing to EventBridge follows at the detector's publishing frequency.

Unlike real GuardDuty, which learns what is normal and can take a while,
these rules are deterministic signatures: the same activity gives the same
findings on every run.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from labkit.local import clock, findings_store, instance_roles, settings, traffic
from labkit.local.gateway import RESET_HOOKS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """What a rule saw: enough to write one occurrence of a finding."""

    resource: dict[str, Any]
    action: dict[str, Any]
    fingerprint: str
    description: str
    # GuardDuty's titles name the resource; empty means the rule's own title.
    title: str = ""
    evidence: dict[str, Any] | None = None
    additional_info: dict[str, Any] | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True)
class Rule:
    """One detector rule: the finding type it raises and how it matches."""

    finding_type: str
    severity: float
    data_source: str
    title: str
    match: Callable[[Any, str, str], Iterable[Detection]]


RULES: dict[str, Rule] = {}


def rule(
    finding_type: str, *, severity: float, data_source: str, title: str
) -> Callable[[Callable[[Any, str, str], Iterable[Detection]]], Rule]:
    """Register a matcher as the rule for ``finding_type``."""

    def register(match: Callable[[Any, str, str], Iterable[Detection]]) -> Rule:
        made = Rule(finding_type, severity, data_source, title, match)
        RULES[finding_type] = made
        return made

    return register


def instance_resource(instance: Any) -> dict[str, Any]:
    """Return GuardDuty's ``Resource`` for an instance, from its description."""
    described = instance.description
    profile = described.get("IamInstanceProfile")
    details: dict[str, Any] = {
        "AvailabilityZone": described.get("Placement", {}).get("AvailabilityZone", ""),
        "ImageId": described.get("ImageId", ""),
        "InstanceId": instance.instance_id,
        "InstanceState": described.get("State", {}).get("Name", "running"),
        "InstanceType": described.get("InstanceType", ""),
        "LaunchTime": _iso(described.get("LaunchTime")),
        "NetworkInterfaces": [
            {
                "Ipv6Addresses": [],
                "NetworkInterfaceId": instance.eni_id,
                "PrivateDnsName": described.get("PrivateDnsName", ""),
                "PrivateIpAddress": instance.private_ip,
                "PrivateIpAddresses": [
                    {
                        "PrivateDnsName": described.get("PrivateDnsName", ""),
                        "PrivateIpAddress": instance.private_ip,
                    }
                ],
                "PublicDnsName": described.get("PublicDnsName", ""),
                "PublicIp": instance.public_ip or "",
                "SecurityGroups": [
                    {"GroupId": g["GroupId"], "GroupName": g.get("GroupName", "")}
                    for g in described.get("SecurityGroups", [])
                ],
                "SubnetId": instance.subnet_id,
                "VpcId": instance.vpc_id,
            }
        ],
        "Tags": [
            {"Key": t["Key"], "Value": t["Value"]} for t in described.get("Tags", [])
        ],
    }
    if profile:
        details["IamInstanceProfile"] = instance_profile(profile["Arn"])
    return {"ResourceType": "Instance", "InstanceDetails": details}


def instance_profile(arn: str) -> dict[str, str]:
    """Return GuardDuty's ``IamInstanceProfile``: the profile's ARN and IAM id.

    GuardDuty gives the instance profile's own id (IAM's ``InstanceProfileId``,
    ``AIPA...`` in AWS), which is what EC2's ``IamInstanceProfile.Id`` holds
    too. moto's DescribeInstances puts the association id (``iip-assoc-...``)
    there instead, so the id is read from IAM. A profile IAM no longer knows
    keeps only its ARN.
    """
    found = instance_roles.instance_profile(arn)
    if found is None:
        logger.debug("instance profile %s is gone; the finding keeps its ARN", arn)
        return {"Arn": arn}
    return {"Arn": found.arn, "Id": found.profile_id}


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return findings_store.iso(value)
    return str(value or "")


def _listed(address: str, account_id: str, region: str) -> tuple[str, str] | None:
    """Return (set id, set name) of the active threat list holding ``address``."""
    ip = ipaddress.ip_address(address)
    for network, _, _ in findings_store.trusted_networks(account_id, region):
        if ip in network:
            return None
    for network, set_id, name in findings_store.active_threat_networks(
        account_id, region
    ):
        if ip in network:
            return set_id, name
    return None


@rule(
    "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
    severity=5.0,
    data_source="VPC flow logs",
    title="Outbound traffic to an address on a custom threat list",
)
def _malicious_ip_caller_ec2(
    flow: traffic.Flow, account_id: str, region: str
) -> Iterable[Detection]:
    if not isinstance(flow, traffic.Flow) or flow.action != "ACCEPT":
        return
    listed = _listed(flow.dstaddr, account_id, region)
    if listed is None:
        return
    _, list_name = listed
    instance = flow.instance
    protocol = traffic.PROTOCOL_NAMES.get(flow.protocol, str(flow.protocol))
    action = {
        "ActionType": "NETWORK_CONNECTION",
        "NetworkConnectionAction": {
            "Blocked": False,
            "ConnectionDirection": "OUTBOUND",
            "LocalIpDetails": {"IpAddressV4": flow.srcaddr},
            "LocalNetworkInterface": instance.eni_id,
            "LocalPortDetails": {"Port": flow.srcport, "PortName": "Unknown"},
            "Protocol": protocol,
            "RemoteIpDetails": {
                "IpAddressV4": flow.dstaddr,
                "Organization": {"Asn": "-1", "AsnOrg": "Unknown", "Isp": "Unknown"},
            },
            "RemotePortDetails": {"Port": flow.dstport, "PortName": "Unknown"},
        },
    }
    yield Detection(
        resource=instance_resource(instance),
        action=action,
        fingerprint=f"ec2-custom-threat|{instance.instance_id}|{flow.dstaddr}",
        # GuardDuty's own wording for this type, as its findings show it.
        title=(
            f"The EC2 instance {instance.instance_id} is communicating with an "
            "IP address on a custom threat list."
        ),
        description=(
            f"The EC2 instance {instance.instance_id} is communicating with the "
            f"IP address {flow.dstaddr} on the custom threat list {list_name}."
        ),
        evidence={
            "ThreatIntelligenceDetails": [
                {"ThreatListName": list_name, "ThreatNames": [list_name]}
            ]
        },
        additional_info={"threatListName": list_name, "unusual": False},
        # Flow-log records keep whole seconds, and so does the finding.
        first_seen=flow.start.replace(microsecond=0),
        last_seen=flow.end.replace(microsecond=0),
    )


def evaluate(
    records: Iterable[Any], account_id: str, region: str, now: datetime
) -> int:
    """Run every rule over ``records`` and record what they detect.

    Returns:
        How many detections were recorded.
    """
    detector_id = findings_store.enabled_detector_id(account_id, region)
    if detector_id is None:
        return 0
    recorded = 0
    for record in records:
        for registered in RULES.values():
            for seen in registered.match(record, account_id, region):
                findings_store.record_finding(
                    account_id,
                    region,
                    detector_id,
                    finding_type=registered.finding_type,
                    severity=registered.severity,
                    title=seen.title or registered.title,
                    description=seen.description,
                    resource=seen.resource,
                    action=seen.action,
                    fingerprint=seen.fingerprint,
                    now=now,
                    evidence=seen.evidence,
                    additional_info=seen.additional_info,
                    first_seen=seen.first_seen,
                    last_seen=seen.last_seen,
                )
                recorded += 1
    return recorded


@clock.on_tick("threat-lists", order=30)
def _refresh_lists(now: datetime, step: timedelta) -> None:
    findings_store.refresh(now)


@clock.on_tick("detector", order=40)
def _detect(now: datetime, step: timedelta) -> None:
    by_region: dict[str, list[traffic.Flow]] = {}
    for flow in traffic.STEP_FLOWS:
        by_region.setdefault(flow.instance.region, []).append(flow)
    for region, flows in by_region.items():
        count = evaluate(flows, settings.LOCAL_ACCOUNT_ID, region, now)
        if count:
            logger.info("detector: %d detections in %s", count, region)


@clock.on_tick("publish-findings", order=50)
def _publish(now: datetime, step: timedelta) -> None:
    published = findings_store.publish_due(now)
    if published:
        logger.info(
            "published %d finding events: %s", len(published), json.dumps(published)
        )


RESET_HOOKS.append(findings_store.reset)
