"""Looking at what the lab created, as tables a notebook can show.

Every function here reads the lab's resources through ordinary AWS read
calls (DescribeInstances, DescribeSecurityGroups, GetFunction, ...), so what
a student sees locally is what the same call shows in an AWS account.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.request
import zipfile
from typing import Any

import pandas as pd

from labkit.errors import NotDeployedError
from labkit.lab import Lab

logger = logging.getLogger(__name__)

FLOW_LOG_FIELDS = [
    "version",
    "account_id",
    "interface_id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log_status",
]


def instances_frame(lab: Lab) -> pd.DataFrame:
    """Return the lab's instances, one row each.

    Columns: ``name, instance_id, state, private_ip, public_ip,
    security_groups, instance_profile``. Only instances tagged as part of the
    lab's stack are listed.
    """
    ec2 = lab.client("ec2")
    filters = [
        {"Name": "tag:aws:cloudformation:stack-name", "Values": [lab.stack_name]}
    ]
    rows = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                rows.append(_instance_row(instance))
    columns = [
        "name",
        "instance_id",
        "state",
        "private_ip",
        "public_ip",
        "security_groups",
        "instance_profile",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("name", ignore_index=True)


def _instance_row(instance: dict[str, Any]) -> dict[str, Any]:
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    profile = instance.get("IamInstanceProfile", {}).get("Arn", "")
    return {
        "name": tags.get("Name", instance["InstanceId"]),
        "instance_id": instance["InstanceId"],
        "state": instance["State"]["Name"],
        "private_ip": instance.get("PrivateIpAddress"),
        "public_ip": instance.get("PublicIpAddress"),
        "security_groups": ", ".join(
            g["GroupName"] for g in instance.get("SecurityGroups", [])
        ),
        "instance_profile": profile.rsplit("/", 1)[-1] if profile else None,
    }


def instance_security_groups(lab: Lab, instance_id: str) -> pd.DataFrame:
    """Return the security groups an instance is in now.

    Columns: ``group_id, group_name``. Read from the instance itself, not its
    network interface.
    """
    ec2 = lab.client("ec2")
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    groups = reservations[0]["Instances"][0].get("SecurityGroups", [])
    rows = [{"group_id": g["GroupId"], "group_name": g["GroupName"]} for g in groups]
    return pd.DataFrame(rows, columns=["group_id", "group_name"])


def security_group_rules(lab: Lab, group_id: str) -> pd.DataFrame:
    """Return a security group's rules, inbound then outbound.

    Columns: ``direction, protocol, ports, addresses``. An empty direction
    has no row: a group with no rows lets nothing in and nothing out.
    """
    ec2 = lab.client("ec2")
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    rows = []
    for direction, key in (
        ("inbound", "IpPermissions"),
        ("outbound", "IpPermissionsEgress"),
    ):
        for permission in group.get(key, []):
            rows.append(
                {
                    "direction": direction,
                    "protocol": _protocol(permission.get("IpProtocol", "-1")),
                    "ports": _ports(permission),
                    "addresses": ", ".join(_addresses(permission)) or "-",
                }
            )
    return pd.DataFrame(rows, columns=["direction", "protocol", "ports", "addresses"])


def _protocol(value: str) -> str:
    return {"-1": "all", "1": "icmp", "6": "tcp", "17": "udp"}.get(value, value)


def _ports(permission: dict[str, Any]) -> str:
    low, high = permission.get("FromPort"), permission.get("ToPort")
    if low is None or low == -1:
        return "all"
    return str(low) if low == high else f"{low}-{high}"


def _addresses(permission: dict[str, Any]) -> list[str]:
    found = [r["CidrIp"] for r in permission.get("IpRanges", [])]
    found += [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])]
    found += [p["GroupId"] for p in permission.get("UserIdGroupPairs", [])]
    return found


def user_data(lab: Lab, instance_id: str) -> str:
    """Return the script an instance runs at boot (its user data)."""
    ec2 = lab.client("ec2")
    answer = ec2.describe_instance_attribute(
        InstanceId=instance_id, Attribute="userData"
    )
    encoded = answer.get("UserData", {}).get("Value", "")
    return base64.b64decode(encoded).decode("utf-8", "replace")


def flow_log_records(lab: Lab, log_group: str, *, limit: int = 20) -> pd.DataFrame:
    """Return the newest VPC flow-log records of a log group, parsed.

    Columns: the default (version 2) fields, ``version ... log_status``, with
    ``start`` and ``end`` as UTC times, plus ``logged_at``.
    """
    rows = []
    for event in _log_events(lab, log_group)[-limit:]:
        values = event["message"].split()
        if len(values) != len(FLOW_LOG_FIELDS):
            continue
        row: dict[str, Any] = dict(zip(FLOW_LOG_FIELDS, values, strict=True))
        row["logged_at"] = pd.to_datetime(event["timestamp"], unit="ms", utc=True)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*FLOW_LOG_FIELDS, "logged_at"])
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(
            frame[column].astype("int64"), unit="s", utc=True
        )
    return frame


def function_source(lab: Lab, function_name: str) -> str:
    """Return the Python source a Lambda function really runs.

    The code is fetched the way the console does: GetFunction gives a
    short-lived download URL of the deployment package, and the handler's
    module is read out of that zip.
    """
    answer = lab.client("lambda").get_function(FunctionName=function_name)
    handler = answer["Configuration"]["Handler"]
    module = handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
    with urllib.request.urlopen(answer["Code"]["Location"], timeout=60) as download:
        package = zipfile.ZipFile(io.BytesIO(download.read()))
    if module not in package.namelist():
        message = (
            f"{function_name!r}: its package has no {module!r} for handler {handler!r}"
        )
        raise NotDeployedError(message)
    return package.read(module).decode("utf-8")


def rule_pattern(lab: Lab, rule_name: str) -> dict[str, Any]:
    """Return an EventBridge rule's event pattern as a dict."""
    described = lab.client("events").describe_rule(Name=rule_name)
    return dict(json.loads(described["EventPattern"]))


def rule_targets(lab: Lab, rule_name: str) -> pd.DataFrame:
    """Return a rule's targets.

    Columns: ``id, service, arn, input``: ``input`` says what the target
    receives (the whole event, or the input template).
    """
    targets = lab.client("events").list_targets_by_rule(Rule=rule_name)["Targets"]
    rows = []
    for target in targets:
        transformer = target.get("InputTransformer")
        shown = "the whole event"
        if transformer:
            shown = transformer["InputTemplate"]
        elif target.get("Input") or target.get("InputPath"):
            shown = target.get("Input") or f"InputPath {target['InputPath']}"
        rows.append(
            {
                "id": target["Id"],
                "service": target["Arn"].split(":")[2],
                "arn": target["Arn"],
                "input": shown,
            }
        )
    return pd.DataFrame(rows, columns=["id", "service", "arn", "input"])


def log_lines(lab: Lab, log_group: str, *, limit: int = 20) -> list[str]:
    """Return the newest ``limit`` lines of a log group, oldest first."""
    return [e["message"].rstrip("\n") for e in _log_events(lab, log_group)[-limit:]]


def _log_events(lab: Lab, log_group: str) -> list[dict[str, Any]]:
    logs = lab.client("logs")
    events: list[dict[str, Any]] = []
    for page in logs.get_paginator("filter_log_events").paginate(
        logGroupName=log_group
    ):
        events.extend(page["events"])
    events.sort(key=lambda e: e["timestamp"])
    return events
