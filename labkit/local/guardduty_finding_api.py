"""The GuardDuty API of the local cloud: findings and sample findings.

Findings are listed, fetched, archived and counted from
:mod:`labkit.local.findings_store`, filtered and sorted by
:mod:`labkit.local.finding_criteria`. CreateSampleFindings records findings
with GuardDuty's ``GeneratedFinding...`` placeholder values, flagged
``"sample": true`` in their additional info.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from labkit.local import findings_store as store
from labkit.local.finding_criteria import (
    bad_request,
    page,
    query,
    sort_views,
    statistics,
)
from labkit.local.registry import Call, operation

logger = logging.getLogger(__name__)


@operation("guardduty", "ListFindings")
def list_findings(call: Call) -> dict[str, Any]:
    """List finding ids matching FindingCriteria, sorted, 50 at most per page."""
    views = query(
        store.get_called_detector(call),
        call.params.get("FindingCriteria"),
        call.params.get("SortCriteria"),
    )
    chosen, token = page([v["id"] for v in views], call.params)
    return {"FindingIds": chosen, "NextToken": token}


@operation("guardduty", "GetFindings")
def get_findings(call: Call) -> dict[str, Any]:
    """Return up to 50 findings by id (unknown ids are left out, as in AWS)."""
    detector = store.get_called_detector(call)
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
    store.set_archived(store.get_called_detector(call), call.params["FindingIds"], True)
    return {}


@operation("guardduty", "UnarchiveFindings")
def unarchive_findings(call: Call) -> dict[str, Any]:
    """Bring archived findings back to the current view."""
    store.set_archived(
        store.get_called_detector(call), call.params["FindingIds"], False
    )
    return {}


@operation("guardduty", "GetFindingsStatistics")
def get_findings_statistics(call: Call) -> dict[str, Any]:
    """Count the findings that match the criteria, by severity or by a group."""
    views = query(
        store.get_called_detector(call), call.params.get("FindingCriteria"), None
    )
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
    detector = store.get_called_detector(call)
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
            now=store.read_lab_time(),
            additional_info={"sample": True},
        )
    return {}
