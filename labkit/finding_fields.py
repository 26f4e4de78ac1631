"""One row of a findings frame, read from one finding in either key case.

A finding in a GetFindings response has PascalCase keys; one from an S3
export or an EventBridge event has camelCase keys. The reader here takes
camelCase paths and looks each key up in the finding's own case, so every
column is read the same way whatever the shape.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from labkit.errors import ConfigError

# ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact
_TYPE_PATTERN = re.compile(
    r"^(?P<purpose>[^:/]+):(?P<affected>[^/]+)/(?P<family>[^.!]+)"
    r"(?:\.(?P<mechanism>[^!]+))?(?:!(?P<artifact>.+))?$"
)

# Where each action type keeps its details; unknown types are searched whole.
_ACTION_KEYS = {
    "NETWORK_CONNECTION": "networkConnectionAction",
    "PORT_PROBE": "portProbeAction",
    "AWS_API_CALL": "awsApiCallAction",
    "DNS_REQUEST": "dnsRequestAction",
    "RDS_LOGIN_ATTEMPT": "rdsLoginAttemptAction",
    "KUBERNETES_API_CALL": "kubernetesApiCallAction",
}

_SEVERITY_BANDS = [(1.0, 4.0, "Low"), (4.0, 7.0, "Medium"), (7.0, 9.0, "High")]


def severity_label(value: float) -> str:
    """Return GuardDuty's label for a severity value.

    The bands are half-open so that no value between two labels is lost:
    [1, 4) Low, [4, 7) Medium, [7, 9) High and [9, 10] Critical.

    Args:
        value: A severity between 1.0 and 10.0.

    Raises:
        ConfigError: The value is missing or outside 1.0 to 10.0.
    """
    number = _number(value)
    for low, high, label in _SEVERITY_BANDS:
        if low <= number < high:
            return label
    if 9.0 <= number <= 10.0:
        return "Critical"
    raise ConfigError(
        f"severity {value!r} is not a number from 1.0 to 10.0 (GuardDuty's range); "
        "pass the finding's own severity value"
    )


def pascal_case(name: str) -> str:
    """Return a camelCase key as GuardDuty's PascalCase spelling of it."""
    return name[:1].upper() + name[1:]


class _Reader:
    """Reads camelCase paths from one finding, whatever its key case."""

    def __init__(self, finding: Mapping[str, Any]) -> None:
        upper = sum(1 for key in finding if str(key)[:1].isupper())
        self.pascal = upper > len(finding) - upper

    def get(self, node: Any, *path: str) -> Any:
        for name in path:
            if not isinstance(node, Mapping):
                return None
            node = node.get(pascal_case(name) if self.pascal else name)
        return node


def finding_row(
    finding: Mapping[str, Any], envelope: Mapping[str, Any]
) -> dict[str, Any]:
    """Read one finding into a row keyed by the findings frame's columns.

    Args:
        finding: The finding, with camelCase or PascalCase keys.
        envelope: The EventBridge event that carried it, or an empty mapping;
            its ``account`` and ``region`` fill in what the finding lacks.
    """
    read = _Reader(finding)
    finding_type = _text(read.get(finding, "type"))
    severity = _number(read.get(finding, "severity"))
    row: dict[str, Any] = {
        "id": _text(read.get(finding, "id")),
        "type": finding_type,
        **split_type(finding_type),
        "severity": severity,
        "severity_label": _label(severity),
        "title": _text(read.get(finding, "title")),
        "updated_at": _text(read.get(finding, "updatedAt")),
        "account_id": _text(read.get(finding, "accountId") or envelope.get("account")),
        "region": _text(read.get(finding, "region") or envelope.get("region")),
    }
    row.update(_resource_fields(read, read.get(finding, "resource")))
    service = read.get(finding, "service")
    row.update(_action_fields(read, read.get(service, "action")))
    row.update(_service_fields(read, service))
    return row


def split_type(finding_type: Any) -> dict[str, Any]:
    """Split a finding type into purpose, affected, family, mechanism, artifact.

    A part the type lacks, or every part of a value that is not a finding
    type, is NaN.
    """
    names = ["purpose", "affected", "family", "mechanism", "artifact"]
    match = _TYPE_PATTERN.match(finding_type) if isinstance(finding_type, str) else None
    if match is None:
        return dict.fromkeys(names, math.nan)
    return {name: _text(match.group(name)) for name in names}


def _resource_fields(read: _Reader, resource: Any) -> dict[str, Any]:
    return {
        "resource_type": _text(read.get(resource, "resourceType")),
        "instance_id": _text(read.get(resource, "instanceDetails", "instanceId")),
        "access_key_id": _text(read.get(resource, "accessKeyDetails", "accessKeyId")),
        "user_name": _text(read.get(resource, "accessKeyDetails", "userName")),
    }


def _action_fields(read: _Reader, action: Any) -> dict[str, Any]:
    action_type = read.get(action, "actionType")
    key = _ACTION_KEYS.get(action_type) if isinstance(action_type, str) else None
    if key is not None:
        details = [read.get(action, key)]
    elif isinstance(action, Mapping):
        details = list(action.values())
    else:
        details = []
    remote_ips = _remote_ips(read, details)
    api_call = read.get(action, "awsApiCallAction")
    domain = read.get(action, "dnsRequestAction", "domain") or read.get(
        api_call, "domainDetails", "domain"
    )
    return {
        "action_type": _text(action_type),
        "remote_ips": remote_ips,
        "remote_ip": remote_ips[0] if remote_ips else math.nan,
        "domain": _text(domain),
        "api": _text(read.get(api_call, "api")),
    }


def _remote_ips(read: _Reader, details: list[Any]) -> list[str]:
    """Collect remote addresses, in order and without repeats."""
    found: list[str] = []
    for detail in details:
        places = [read.get(detail, "remoteIpDetails")]
        probes = read.get(detail, "portProbeDetails")
        if isinstance(probes, list):
            places.extend(read.get(probe, "remoteIpDetails") for probe in probes)
        for place in places:
            address = read.get(place, "ipAddressV4") or read.get(place, "ipAddressV6")
            if isinstance(address, str) and address not in found:
                found.append(address)
    return found


def _service_fields(read: _Reader, service: Any) -> dict[str, Any]:
    count = _number(read.get(service, "count"))
    return {
        "count": None if math.isnan(count) else int(count),
        "first_seen": _text(read.get(service, "eventFirstSeen")),
        "last_seen": _text(read.get(service, "eventLastSeen")),
        "archived": read.get(service, "archived") is True,
        "sample": _is_sample(read, read.get(service, "additionalInfo")),
    }


def _is_sample(read: _Reader, info: Any) -> bool:
    """Tell sample findings apart, wherever the flag is kept."""
    if not isinstance(info, Mapping):
        return False
    if read.get(info, "sample") is True or info.get("sample") is True:
        return True
    value = read.get(info, "value")
    if not isinstance(value, str):
        return False
    try:
        decoded = json.loads(value)
    except ValueError:
        return False
    return isinstance(decoded, Mapping) and decoded.get("sample") is True


def _text(value: Any) -> Any:
    return value if isinstance(value, str) and value != "" else math.nan


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _label(severity: float) -> Any:
    if math.isnan(severity) or not 1.0 <= severity <= 10.0:
        return math.nan
    return severity_label(severity)
