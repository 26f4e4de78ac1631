"""The GuardDuty API of the local cloud, served in moto's place.

moto 5.2.5 answers the detector calls but has no threat intel sets, IP sets or
findings, so the local cloud serves every GuardDuty operation the lab uses
from :mod:`labkit.local.findings_store`. Handlers take botocore's PascalCase
input members and return its PascalCase output members; the gateway
serializes them to GuardDuty's camelCase wire format.

Limitations: set files are read in TXT format only; filters (CreateFilter and
friends), members and organisation calls go on to moto, which does not know
these detectors.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from labkit.local import findings_store as store
from labkit.local import guardduty_sets as sets
from labkit.local.finding_criteria import (
    bad_request,
    page,
    query,
    sort_views,
    statistics,
)
from labkit.local.registry import Call, ServiceError, operation

logger = logging.getLogger(__name__)


_FREQUENCIES = sorted(store.PUBLISHING_FREQUENCIES)
_SERVICE_ROLE = (
    "arn:aws:iam::{}:role/aws-service-role/guardduty.amazonaws.com/"
    "AWSServiceRoleForAmazonGuardDuty"
)


def _now() -> datetime:
    # The local cloud runs on lab time, so this is the lab clock.
    return datetime.now(UTC)


def _detector(call: Call) -> store.Detector:
    return store.get_detector(call.account_id, call.region, call.params["DetectorId"])


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
        now=_now(),
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
    detector = _detector(call)
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
        detector = _detector(call)
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
        detector.updated_at = _now()
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


# Threat intel sets and IP sets ----------------------------------------------

_SET_API = {
    "threat": ("ThreatIntelSetId", "ThreatIntelSetIds"),
    "ip": ("IpSetId", "IpSetIds"),
}
_FORMATS = ("TXT", "STIX", "OTX_CSV", "ALIEN_VAULT", "PROOF_POINT", "FIRE_EYE")


def _check_location(location: str) -> None:
    try:
        sets.parse_location(location)
    except ValueError as error:
        raise bad_request(
            f"Location {location!r} is not an S3 object URL such as https://s3.amazonaws.com/bucket/key."
        ) from error


def _create_set(call: Call, kind: str) -> dict[str, Any]:
    detector = _detector(call)
    name, fmt, location = (
        call.params["Name"],
        call.params["Format"],
        call.params["Location"],
    )
    if not 1 <= len(name) <= 300:
        raise bad_request(f"Name {name!r} must be 1 to 300 characters.")
    if fmt not in _FORMATS:
        raise bad_request(f"Format {fmt!r} is not one of {list(_FORMATS)}.")
    _check_location(location)
    listed = store.add_set(
        detector,
        kind,
        name=name,
        format=fmt,
        location=location,
        status="ACTIVATING" if call.params["Activate"] else "INACTIVE",
        tags=dict(call.params.get("Tags") or {}),
        expected_bucket_owner=call.params.get("ExpectedBucketOwner"),
    )
    return {_SET_API[kind][0]: listed.set_id}


def _get_set(call: Call, kind: str) -> dict[str, Any]:
    listed = store.get_set(_detector(call), kind, call.params[_SET_API[kind][0]])
    out = {
        "Name": listed.name,
        "Format": listed.format,
        "Location": listed.location,
        "Status": listed.status,
        "Tags": dict(listed.tags),
    }
    if listed.expected_bucket_owner:
        out["ExpectedBucketOwner"] = listed.expected_bucket_owner
    return out


def _update_set(call: Call, kind: str) -> dict[str, Any]:
    with store.lock():
        listed = store.get_set(_detector(call), kind, call.params[_SET_API[kind][0]])
        reread = False
        if "Name" in call.params:
            listed.name = call.params["Name"]
        if "ExpectedBucketOwner" in call.params:
            listed.expected_bucket_owner = call.params["ExpectedBucketOwner"]
        if "Location" in call.params:
            _check_location(call.params["Location"])
            listed.location = call.params["Location"]
            reread = listed.status in ("ACTIVE", "ACTIVATING", "ERROR")
        activate = call.params.get("Activate")
        if activate is True or (reread and activate is None):
            listed.status = "ACTIVATING"
        elif activate is False:
            listed.status = (
                "DEACTIVATING"
                if listed.status in ("ACTIVE", "ACTIVATING")
                else "INACTIVE"
            )
        logger.info("updated %s set %s: %s", kind, listed.set_id, listed.status)
        return {}


def _delete_set(call: Call, kind: str) -> dict[str, Any]:
    with store.lock():
        detector = _detector(call)
        listed = store.get_set(detector, kind, call.params[_SET_API[kind][0]])
        del detector.sets[listed.set_id]
        logger.info("deleted %s set %s", kind, listed.set_id)
        return {}


def _list_sets(call: Call, kind: str) -> dict[str, Any]:
    detector = _detector(call)
    ids = [s.set_id for s in detector.sets.values() if s.kind == kind]
    chosen, token = page(ids, call.params)
    return {_SET_API[kind][1]: chosen, "NextToken": token}


def _bind(
    handler: Callable[[Call, str], dict[str, Any]], kind: str
) -> Callable[[Call], dict[str, Any]]:
    def serve(call: Call) -> dict[str, Any]:
        return handler(call, kind)

    return serve


def _register_sets(label: str, kind: str) -> None:
    verbs: dict[str, Callable[[Call, str], dict[str, Any]]] = {
        "Create": _create_set,
        "Get": _get_set,
        "Update": _update_set,
        "Delete": _delete_set,
    }
    for verb, handler in verbs.items():
        operation("guardduty", f"{verb}{label}")(_bind(handler, kind))
    operation("guardduty", f"List{label}s")(_bind(_list_sets, kind))


_register_sets("ThreatIntelSet", "threat")
_register_sets("IPSet", "ip")


# Findings -------------------------------------------------------------------


@operation("guardduty", "ListFindings")
def list_findings(call: Call) -> dict[str, Any]:
    """List finding ids matching FindingCriteria, sorted, 50 at most per page."""
    views = query(
        _detector(call),
        call.params.get("FindingCriteria"),
        call.params.get("SortCriteria"),
    )
    chosen, token = page([v["id"] for v in views], call.params)
    return {"FindingIds": chosen, "NextToken": token}


@operation("guardduty", "GetFindings")
def get_findings(call: Call) -> dict[str, Any]:
    """Return up to 50 findings by id (unknown ids are left out, as in AWS)."""
    detector = _detector(call)
    wanted = call.params["FindingIds"]
    if len(wanted) > 50:
        raise bad_request(
            f"FindingIds has {len(wanted)} ids; at most 50 are allowed per call."
        )
    with store.lock():
        by_id = {f["Id"]: copy.deepcopy(f) for f in store.findings(detector)}
    present = [i for i in dict.fromkeys(wanted) if i in by_id]
    finding_shape = store.shape("Finding")
    views = [store.to_wire(by_id[i], finding_shape) for i in present]
    ordered = sort_views(views, call.params.get("SortCriteria"))
    return {"Findings": [by_id[view["id"]] for view in ordered]}


@operation("guardduty", "ArchiveFindings")
def archive_findings(call: Call) -> dict[str, Any]:
    """Mark findings archived (``service.archived`` true)."""
    store.set_archived(_detector(call), call.params["FindingIds"], True)
    return {}


@operation("guardduty", "UnarchiveFindings")
def unarchive_findings(call: Call) -> dict[str, Any]:
    """Bring archived findings back to the current view."""
    store.set_archived(_detector(call), call.params["FindingIds"], False)
    return {}


@operation("guardduty", "GetFindingsStatistics")
def get_findings_statistics(call: Call) -> dict[str, Any]:
    """Count the findings that match the criteria, by severity or by a group."""
    views = query(_detector(call), call.params.get("FindingCriteria"), None)
    return {"FindingStatistics": statistics(views, call.params)}


# Sample findings ------------------------------------------------------------

_SAMPLE_TYPES = (
    "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
    "Recon:IAMUser/MaliciousIPCaller.Custom",
    "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
    "Recon:EC2/Portscan",
    "UnauthorizedAccess:EC2/SSHBruteForce",
    "Policy:IAMUser/RootCredentialUsage",
)
_SAMPLE_SEVERITY = {
    "Recon": 5.0,
    "Policy": 2.0,
    "Discovery": 5.0,
    "PenTest": 5.0,
    "Stealth": 2.0,
}
_FINDING_TYPE = re.compile(r"^[A-Za-z0-9]+:[A-Za-z0-9]+/[A-Za-z0-9.!_-]+$")
_SAMPLE_IP = "198.51.100.0"


def _sample_parts(affected: str) -> tuple[dict[str, Any], dict[str, Any]]:
    remote = {
        "IpAddressV4": _SAMPLE_IP,
        "Organization": {
            "Asn": "-1",
            "AsnOrg": "GeneratedFindingASNOrg",
            "Isp": "GeneratedFindingISP",
            "Org": "GeneratedFindingORG",
        },
    }
    api_call = {
        "ActionType": "AWS_API_CALL",
        "AwsApiCallAction": {
            "Api": "GeneratedFindingAPIName",
            "ServiceName": "GeneratedFindingAPIServiceName",
            "CallerType": "Remote IP",
            "RemoteIpDetails": remote,
        },
    }
    if affected in ("IAMUser", "S3"):
        resource: dict[str, Any] = {
            "ResourceType": "AccessKey",
            "AccessKeyDetails": {
                "AccessKeyId": "GeneratedFindingAccessKeyId",
                "PrincipalId": "GeneratedFindingPrincipalId",
                "UserName": "GeneratedFindingUserName",
                "UserType": "IAMUser",
            },
        }
        if affected == "S3":
            resource = {
                "ResourceType": "S3Bucket",
                "S3BucketDetails": [
                    {"Name": "generatedfindingbucketname", "Type": "Destination"}
                ],
            }
        return resource, api_call
    resource = {
        "ResourceType": "Instance",
        "InstanceDetails": {
            "InstanceId": "i-99999999",
            "InstanceType": "m3.xlarge",
            "ImageId": "ami-99999999",
            "InstanceState": "running",
            "AvailabilityZone": "GeneratedFindingInstanceAvailabilityZone",
        },
    }
    network = {
        "ActionType": "NETWORK_CONNECTION",
        "NetworkConnectionAction": {
            "ConnectionDirection": "OUTBOUND",
            "Protocol": "TCP",
            "Blocked": False,
            "RemoteIpDetails": remote,
            "RemotePortDetails": {"Port": 80, "PortName": "HTTP"},
        },
    }
    return resource, network


@operation("guardduty", "CreateSampleFindings")
def create_sample_findings(call: Call) -> dict[str, Any]:
    """Create one sample finding per requested type, flagged ``"sample": true``.

    Samples carry GuardDuty's ``GeneratedFinding...`` placeholder values and a
    documentation address; asking again for a type raises its count. With no
    types, a handful of types the lab is about are made.
    """
    detector = _detector(call)
    types = call.params.get("FindingTypes") or list(_SAMPLE_TYPES)
    for finding_type in types:
        if not _FINDING_TYPE.match(finding_type):
            raise bad_request(
                f"Finding type {finding_type!r} is not of the form "
                "'Purpose:Resource/Family.Variant'."
            )
    for finding_type in types:
        purpose, affected = finding_type.split("/", 1)[0].split(":")
        resource, action = _sample_parts(affected)
        store.record_finding(
            call.account_id,
            call.region,
            detector.detector_id,
            finding_type=finding_type,
            severity=_SAMPLE_SEVERITY.get(purpose, 8.0),
            title=f"Sample finding: {finding_type}",
            description=(
                f"This is a sample {finding_type} finding made by "
                "CreateSampleFindings; no real activity caused it."
            ),
            resource=resource,
            action=action,
            fingerprint=f"sample:{finding_type}",
            now=_now(),
            additional_info={"sample": True},
        )
    return {}
