"""The GuardDuty API of the local cloud, served in moto's place: detectors.

moto 5.2.5 answers the detector calls but has no threat intel sets, IP sets or
findings, so the local cloud serves every GuardDuty operation the lab uses
from :mod:`labkit.local.findings_store`. Handlers take botocore's PascalCase
input members and return its PascalCase output members; the gateway
serializes them to GuardDuty's camelCase wire format.

This module serves the detector and tagging calls; importing it also imports
:mod:`labkit.local.guardduty_set_api` (threat intel sets and IP sets) and
:mod:`labkit.local.guardduty_finding_api` (findings and sample findings), so
it registers every GuardDuty handler.

Limitations: set files are read in TXT format only; filters (CreateFilter and
friends), members and organisation calls go on to moto, which does not know
these detectors.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from labkit.local import findings_store as store
from labkit.local import guardduty_finding_api, guardduty_set_api  # noqa: F401
from labkit.local.finding_criteria import bad_request, page
from labkit.local.registry import Call, ServiceError, operation

logger = logging.getLogger(__name__)

_FREQUENCIES = sorted(store.PUBLISHING_FREQUENCIES)
_SERVICE_ROLE = (
    "arn:aws:iam::{}:role/aws-service-role/guardduty.amazonaws.com/"
    "AWSServiceRoleForAmazonGuardDuty"
)


# Detectors ------------------------------------------------------------------


@operation("guardduty", "CreateDetector")
def create_detector(call: Call) -> dict[str, Any]:
    """Turn GuardDuty on in the caller's region (one detector per region)."""
    frequency = call.params.get("FindingPublishingFrequency")
    if frequency is not None and frequency not in store.PUBLISHING_FREQUENCIES:
        raise bad_request(
            f"FindingPublishingFrequency {frequency!r} is not one of {_FREQUENCIES}."
        )
    detector = store.create_detector(
        call.account_id,
        call.region,
        enable=bool(call.params.get("Enable", True)),
        now=store.read_lab_time(),
        frequency=frequency,
        tags=call.params.get("Tags"),
        data_sources=call.params.get("DataSources"),
        features=call.params.get("Features"),
    )
    return {"DetectorId": detector.detector_id}


def _feature_status(detector: store.Detector, name: str, default: str) -> str:
    for feature in detector.features:
        if feature.get("Name") == name:
            return str(feature.get("Status", default))
    return default


@operation("guardduty", "GetDetector")
def get_detector(call: Call) -> dict[str, Any]:
    """Describe the detector: status, publishing frequency, data sources, tags."""
    detector = store.get_called_detector(call)
    s3_default = (
        "ENABLED"
        if detector.data_sources.get("S3Logs", {}).get("Enable")
        else "DISABLED"
    )
    s3 = _feature_status(detector, "S3_DATA_EVENTS", s3_default)
    eks = _feature_status(detector, "EKS_AUDIT_LOGS", "DISABLED")
    ebs = _feature_status(detector, "EBS_MALWARE_PROTECTION", "DISABLED")
    role = _SERVICE_ROLE.format(detector.account_id)
    updated = detector.updated_at.replace(microsecond=0)
    names = {"CLOUD_TRAIL": "ENABLED", "DNS_LOGS": "ENABLED", "FLOW_LOGS": "ENABLED"}
    names |= {
        "S3_DATA_EVENTS": s3,
        "EKS_AUDIT_LOGS": eks,
        "EBS_MALWARE_PROTECTION": ebs,
    }
    for other in ("RDS_LOGIN_EVENTS", "LAMBDA_NETWORK_LOGS", "RUNTIME_MONITORING"):
        names[other] = _feature_status(detector, other, "DISABLED")
    return {
        "CreatedAt": store.iso(detector.created_at),
        "FindingPublishingFrequency": detector.frequency,
        "ServiceRole": role,
        "Status": "ENABLED" if detector.enabled else "DISABLED",
        "UpdatedAt": store.iso(detector.updated_at),
        "DataSources": {
            "CloudTrail": {"Status": "ENABLED"},
            "DNSLogs": {"Status": "ENABLED"},
            "FlowLogs": {"Status": "ENABLED"},
            "S3Logs": {"Status": s3},
            "Kubernetes": {"AuditLogs": {"Status": eks}},
            "MalwareProtection": {
                "ScanEc2InstanceWithFindings": {"EbsVolumes": {"Status": ebs}},
                "ServiceRole": role,
            },
        },
        "Tags": dict(detector.tags),
        "Features": [
            {"Name": n, "Status": s, "UpdatedAt": updated} for n, s in names.items()
        ],
    }


@operation("guardduty", "UpdateDetector")
def update_detector(call: Call) -> dict[str, Any]:
    """Enable or disable the detector, or change its publishing frequency."""
    with store.lock():
        detector = store.get_called_detector(call)
        frequency = call.params.get("FindingPublishingFrequency")
        if frequency is not None:
            if frequency not in store.PUBLISHING_FREQUENCIES:
                raise bad_request(
                    f"FindingPublishingFrequency {frequency!r} is not one of {_FREQUENCIES}."
                )
            detector.frequency = frequency
        if "Enable" in call.params:
            detector.enabled = bool(call.params["Enable"])
        if "DataSources" in call.params:
            detector.data_sources = dict(call.params["DataSources"])
        if "Features" in call.params:
            detector.features = list(call.params["Features"])
        detector.updated_at = store.read_lab_time()
        logger.info("updated GuardDuty detector %s", detector.detector_id)
        return {}


@operation("guardduty", "DeleteDetector")
def delete_detector(call: Call) -> dict[str, Any]:
    """Delete the detector, its sets and its findings."""
    store.delete_detector(call.account_id, call.region, call.params["DetectorId"])
    return {}


@operation("guardduty", "ListDetectors")
def list_detectors(call: Call) -> dict[str, Any]:
    """List the detector ids of the caller's region (zero or one)."""
    found = store.find_detector(call.account_id, call.region)
    ids, token = page([found.detector_id] if found else [], call.params)
    return {"DetectorIds": ids, "NextToken": token}


_ARN = re.compile(
    r"^arn:[\w-]+:guardduty:([\w-]+):(\d{12}):detector/(\w+)"
    r"(?:/(threatintelset|ipset)/(\w+))?$"
)


def _tagged(call: Call) -> dict[str, str]:
    arn = call.params["ResourceArn"]
    found = _ARN.match(arn)
    detector = store.find_detector(call.account_id, call.region)
    if (
        found
        and detector
        and found.group(3) == detector.detector_id
        and found.group(1) == call.region
    ):
        if found.group(4) is None:
            return detector.tags
        kind = "threat" if found.group(4) == "threatintelset" else "ip"
        listed = detector.sets.get(found.group(5) or "")
        if listed is not None and listed.kind == kind:
            return listed.tags
    raise ServiceError(
        "BadRequestException",
        f"The request is rejected because the resource {arn!r} is not found.",
        400,
    )


@operation("guardduty", "TagResource")
def tag_resource(call: Call) -> dict[str, Any]:
    """Add tags to a detector, threat intel set or IP set."""
    with store.lock():
        _tagged(call).update(call.params["Tags"])
        return {}


@operation("guardduty", "UntagResource")
def untag_resource(call: Call) -> dict[str, Any]:
    """Remove tags from a detector, threat intel set or IP set."""
    with store.lock():
        tags = _tagged(call)
        for key in call.params["TagKeys"]:
            tags.pop(key, None)
        return {}


@operation("guardduty", "ListTagsForResource")
def list_tags_for_resource(call: Call) -> dict[str, Any]:
    """Return the tags of a detector, threat intel set or IP set."""
    return {"Tags": dict(_tagged(call))}
