"""A GuardDuty detector's protection plans: Features, and the DataSources before them.

A detector holds one status per feature, and one per additional
configuration of a feature, each with when it last changed. CreateDetector
and UpdateDetector change only what they name, as GuardDuty does: a
``Features`` entry updates the feature of that ``Name``, and within it each
``AdditionalConfiguration`` entry updates the configuration of that name;
every other feature and configuration keeps its state.

``DataSources`` is the notation of the protection plans launched before
March 2023: S3Logs is S3_DATA_EVENTS, Kubernetes AuditLogs is EKS_AUDIT_LOGS
and MalwareProtection's EbsVolumes is EBS_MALWARE_PROTECTION. It changes the
same state, one data source at a time, and GetDetector shows the state in
both notations. GuardDuty refuses a request that uses both; the wording of
that refusal is the local cloud's.

Not modelled: a request naming both EKS_RUNTIME_MONITORING and
RUNTIME_MONITORING is accepted, where GuardDuty refuses it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labkit.local.finding_criteria import bad_request

Features = dict[str, dict[str, Any]]

# What GetDetector shows of a new detector; the foundational sources are on.
_DEFAULTS = {
    "CLOUD_TRAIL": "ENABLED",
    "DNS_LOGS": "ENABLED",
    "FLOW_LOGS": "ENABLED",
    "S3_DATA_EVENTS": "DISABLED",
    "EKS_AUDIT_LOGS": "DISABLED",
    "EBS_MALWARE_PROTECTION": "DISABLED",
    "RDS_LOGIN_EVENTS": "DISABLED",
    "LAMBDA_NETWORK_LOGS": "DISABLED",
    "RUNTIME_MONITORING": "DISABLED",
}
_DEFAULT_ADDITIONAL = {
    "RUNTIME_MONITORING": (
        "EKS_ADDON_MANAGEMENT",
        "ECS_FARGATE_AGENT_MANAGEMENT",
        "EC2_AGENT_MANAGEMENT",
    ),
}
_DATA_SOURCES = (
    (("S3Logs", "Enable"), "S3_DATA_EVENTS"),
    (("Kubernetes", "AuditLogs", "Enable"), "EKS_AUDIT_LOGS"),
    (
        ("MalwareProtection", "ScanEc2InstanceWithFindings", "EbsVolumes"),
        "EBS_MALWARE_PROTECTION",
    ),
)


def initial_features(now: datetime) -> Features:
    """Return the features of a detector created at ``now``, before its request."""
    features: Features = {}
    for name, status in _DEFAULTS.items():
        entry: dict[str, Any] = {"Status": status, "UpdatedAt": now}
        extra = _DEFAULT_ADDITIONAL.get(name, ())
        if extra:
            entry["AdditionalConfiguration"] = {
                other: {"Status": "DISABLED", "UpdatedAt": now} for other in extra
            }
        features[name] = entry
    return features


def requested_changes(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the feature changes a CreateDetector or UpdateDetector asks for.

    ``DataSources`` are turned into the features they stand for.

    Raises:
        ServiceError: BadRequestException, for ``DataSources`` and
            ``Features`` in one request, or a feature without a name.
    """
    if "DataSources" in params and "Features" in params:
        raise bad_request(
            "DataSources and Features cannot be given in the same request; "
            "give Features (DataSources is deprecated)."
        )
    if "DataSources" in params:
        return _from_data_sources(params["DataSources"] or {})
    changes = list(params.get("Features") or [])
    for change in changes:
        if not change.get("Name"):
            raise bad_request(f"A Features entry has no Name: {change!r}.")
    return changes


def _from_data_sources(data_sources: dict[str, Any]) -> list[dict[str, Any]]:
    changes = []
    for path, name in _DATA_SOURCES:
        value: Any = data_sources
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            changes.append({"Name": name, "Status": "ENABLED" if value else "DISABLED"})
    return changes


def apply_changes(
    features: Features, changes: list[dict[str, Any]], now: datetime
) -> None:
    """Update the named features and configurations in place; keep the rest."""
    for change in changes:
        entry = features.setdefault(
            change["Name"], {"Status": "DISABLED", "UpdatedAt": now}
        )
        if change.get("Status"):
            entry["Status"] = change["Status"]
            entry["UpdatedAt"] = now
        for extra in change.get("AdditionalConfiguration") or []:
            configurations = entry.setdefault("AdditionalConfiguration", {})
            configuration = configurations.setdefault(
                extra["Name"], {"Status": "DISABLED", "UpdatedAt": now}
            )
            if extra.get("Status"):
                configuration["Status"] = extra["Status"]
                configuration["UpdatedAt"] = now


def status_of(features: Features, name: str) -> str:
    """Return the status of feature ``name``, DISABLED when never set."""
    return str(features.get(name, {}).get("Status", "DISABLED"))


def feature_results(features: Features) -> list[dict[str, Any]]:
    """Return the features as GetDetector's ``Features`` lists them."""
    results = []
    for name, entry in features.items():
        result: dict[str, Any] = {
            "Name": name,
            "Status": entry["Status"],
            "UpdatedAt": _to_second(entry["UpdatedAt"]),
        }
        configurations = entry.get("AdditionalConfiguration") or {}
        if configurations:
            result["AdditionalConfiguration"] = [
                {
                    "Name": other,
                    "Status": configuration["Status"],
                    "UpdatedAt": _to_second(configuration["UpdatedAt"]),
                }
                for other, configuration in configurations.items()
            ]
        results.append(result)
    return results


def data_source_results(features: Features, service_role: str) -> dict[str, Any]:
    """Return the features as GetDetector's ``DataSources`` shows them."""
    return {
        "CloudTrail": {"Status": status_of(features, "CLOUD_TRAIL")},
        "DNSLogs": {"Status": status_of(features, "DNS_LOGS")},
        "FlowLogs": {"Status": status_of(features, "FLOW_LOGS")},
        "S3Logs": {"Status": status_of(features, "S3_DATA_EVENTS")},
        "Kubernetes": {"AuditLogs": {"Status": status_of(features, "EKS_AUDIT_LOGS")}},
        "MalwareProtection": {
            "ScanEc2InstanceWithFindings": {
                "EbsVolumes": {"Status": status_of(features, "EBS_MALWARE_PROTECTION")}
            },
            "ServiceRole": service_role,
        },
    }


def _to_second(moment: datetime) -> datetime:
    # Whole seconds survive the wire's epoch-seconds timestamps unchanged.
    return moment.replace(microsecond=0)
