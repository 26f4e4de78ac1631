"""The local cloud's GuardDuty findings: recording, listing, archiving.

Findings are kept in the PascalCase form boto3 returns from GetFindings, so the
API handlers hand them out unchanged. The lab detector (``detector.py``)
decides when something is a finding and calls :func:`record_finding`; the lab
clock calls :func:`refresh` and :func:`publish_due` every simulated minute.

This module is also the one entry point to GuardDuty's local state: it
re-exports the detector and set functions of
:mod:`labkit.local.guardduty_state` and the event functions of
:mod:`labkit.local.finding_events`, so callers need import only this.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import datetime
from typing import Any

from botocore.validate import ParamValidator
from moto.moto_api._internal import mock_random
from moto.utilities.utils import get_partition

from labkit.local.finding_events import (
    finding_to_event_detail,
    publish_due,
    shape,
    to_wire,
)
from labkit.local.guardduty_state import (
    NOT_OWNED,
    PUBLISHING_FREQUENCIES,
    SET_LIMITS,
    Detector,
    FindingRecord,
    active_threat_networks,
    add_set,
    all_detectors,
    create_detector,
    delete_detector,
    enabled_detector_id,
    find_detector,
    get_called_detector,
    get_detector,
    get_set,
    iso,
    lock,
    read_lab_time,
    refresh,
    reset,
    trusted_networks,
)

__all__ = [
    "NOT_OWNED",
    "PUBLISHING_FREQUENCIES",
    "SET_LIMITS",
    "Detector",
    "FindingRecord",
    "active_threat_networks",
    "add_set",
    "all_detectors",
    "create_detector",
    "delete_detector",
    "enabled_detector_id",
    "find_detector",
    "finding_to_event_detail",
    "findings",
    "get_called_detector",
    "get_detector",
    "get_set",
    "iso",
    "lock",
    "publish_due",
    "read_lab_time",
    "record_finding",
    "refresh",
    "reset",
    "set_archived",
    "shape",
    "to_wire",
    "trusted_networks",
]

logger = logging.getLogger(__name__)


def _check(value: dict[str, Any], shape_name: str, what: str) -> None:
    report = ParamValidator().validate(value, shape(shape_name))
    if report.has_errors():
        raise ValueError(
            f"{what} does not fit GuardDuty's {shape_name}: {report.generate_report()}"
        )


def _resource_role(finding_type: str, action: dict[str, Any]) -> str:
    # GuardDuty names the resource the ACTOR when it is the one reaching out
    # on its own: DNS lookups and port scans; otherwise it is the TARGET.
    if action.get("ActionType") == "DNS_REQUEST" or finding_type.startswith(
        "Recon:EC2/Portscan"
    ):
        return "ACTOR"
    return "TARGET"


def record_finding(
    account_id: str,
    region: str,
    detector_id: str,
    *,
    finding_type: str,
    severity: float,
    title: str,
    description: str,
    resource: dict[str, Any],
    action: dict[str, Any],
    fingerprint: str,
    now: datetime,
    evidence: dict[str, Any] | None = None,
    additional_info: dict[str, Any] | None = None,
    resource_role: str | None = None,
    first_seen: datetime | None = None,
    last_seen: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record one occurrence of an activity as a finding, new or repeated.

    The first occurrence of a fingerprint makes a new finding; later ones keep
    its id, raise ``Service.Count``, move ``UpdatedAt`` and take the latest
    action and evidence, as GuardDuty does. ``CreatedAt`` and ``UpdatedAt``
    are when the detector saw it (``now``); ``Service.EventFirstSeen`` and
    ``EventLastSeen`` are when the activity itself happened, the earliest
    and latest of all its occurrences. The caller decides whether the
    detector is enabled (:func:`enabled_detector_id`).

    Args:
        account_id: the account the finding belongs to.
        region: its region.
        detector_id: the detector that raises it.
        finding_type: such as ``"UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"``.
        severity: 1.0 to 10.0.
        title: one-line title.
        description: the longer text.
        resource: a ``Resource`` in PascalCase (``ResourceType``, ``InstanceDetails``...).
        action: an ``Action`` in PascalCase (``ActionType``, ``AwsApiCallAction``...).
        fingerprint: what makes two occurrences the same finding.
        now: lab time of the occurrence.
        evidence: an ``Evidence`` in PascalCase, if any.
        additional_info: free-form facts stored as JSON in ``AdditionalInfo.Value``.
        resource_role: ``"TARGET"`` or ``"ACTOR"``; guessed from the action if None.
        first_seen: when this occurrence of the activity began; ``now`` if None.
        last_seen: when it ended; ``now`` if None.

    Returns:
        A copy of the finding and whether it is new.

    Raises:
        LookupError: no detector with this id in this account and region.
        ValueError: ``resource``, ``action`` or ``evidence`` does not fit the model.
    """
    _check(resource, "Resource", "resource")
    _check(action, "Action", "action")
    if evidence is not None:
        _check(evidence, "Evidence", "evidence")
    seen = (iso(first_seen or now), iso(last_seen or now))
    with lock():
        detector = find_detector(account_id, region)
        if detector is None or detector.detector_id != detector_id:
            raise LookupError(f"no detector {detector_id!r} in {account_id}/{region}")
        finding_id = detector.fingerprints.get(fingerprint)
        if finding_id is not None:
            record = detector.records[finding_id]
            _repeat(record.finding, action, evidence, additional_info, now, seen)
            record.pending = True
            return copy.deepcopy(record.finding), False
        finding = _new_finding(
            detector,
            finding_type=finding_type,
            severity=severity,
            title=title,
            description=description,
            resource=resource,
            action=action,
            evidence=evidence,
            info=additional_info or {},
            role=resource_role or _resource_role(finding_type, action),
            now=now,
            seen=seen,
        )
        detector.records[finding["Id"]] = FindingRecord(finding)
        detector.fingerprints[fingerprint] = finding["Id"]
    logger.info("new finding %s %s", finding["Type"], finding["Id"])
    return copy.deepcopy(finding), True


def _new_finding(
    detector: Detector,
    *,
    info: dict[str, Any],
    role: str,
    now: datetime,
    seen: tuple[str, str],
    **given: Any,
) -> dict[str, Any]:
    finding_id = mock_random.get_random_hex(32)
    stamp = iso(now)
    service: dict[str, Any] = {
        "Action": copy.deepcopy(given["action"]),
        "Archived": False,
        "Count": 1,
        "DetectorId": detector.detector_id,
        "EventFirstSeen": seen[0],
        "EventLastSeen": seen[1],
        "ResourceRole": role,
        "ServiceName": "guardduty",
        "AdditionalInfo": {
            "Value": json.dumps(info, sort_keys=True),
            "Type": "default",
        },
    }
    if given["evidence"] is not None:
        service["Evidence"] = copy.deepcopy(given["evidence"])
    return {
        "AccountId": detector.account_id,
        "Arn": f"{detector.arn}/finding/{finding_id}",
        "CreatedAt": stamp,
        "Description": given["description"],
        "Id": finding_id,
        "Partition": get_partition(detector.region),
        "Region": detector.region,
        "Resource": copy.deepcopy(given["resource"]),
        "SchemaVersion": "2.0",
        "Service": service,
        "Severity": float(given["severity"]),
        "Title": given["title"],
        "Type": given["finding_type"],
        "UpdatedAt": stamp,
    }


def _repeat(
    finding: dict[str, Any],
    action: dict[str, Any],
    evidence: dict[str, Any] | None,
    info: dict[str, Any] | None,
    now: datetime,
    seen: tuple[str, str],
) -> None:
    service = finding["Service"]
    service["Count"] += 1
    finding["UpdatedAt"] = iso(now)
    # Every stamp is iso()'s fixed-width UTC text, so text order is time order;
    # an occurrence reported late must not move the first-seen time forward.
    service["EventFirstSeen"] = min(service["EventFirstSeen"], seen[0])
    service["EventLastSeen"] = max(service["EventLastSeen"], seen[1])
    service["Action"] = copy.deepcopy(action)
    if evidence is not None:
        service["Evidence"] = copy.deepcopy(evidence)
    if info:
        merged = {**json.loads(service["AdditionalInfo"]["Value"]), **info}
        service["AdditionalInfo"]["Value"] = json.dumps(merged, sort_keys=True)


def findings(detector: Detector) -> list[dict[str, Any]]:
    """Return the detector's findings, oldest first (the live objects: copy them)."""
    with lock():
        return [record.finding for record in detector.records.values()]


def set_archived(detector: Detector, finding_ids: list[str], archived: bool) -> None:
    """Archive or unarchive the findings with these ids; unknown ids are skipped."""
    with lock():
        for finding_id in finding_ids:
            record = detector.records.get(finding_id)
            if record is not None:
                record.finding["Service"]["Archived"] = archived
