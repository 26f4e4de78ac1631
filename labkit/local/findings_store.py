"""The local cloud's GuardDuty state: detectors, IP lists, findings, publishing.

Findings are kept in the PascalCase form boto3 returns from GetFindings, so the
API handlers hand them out unchanged. The lab detector (``detector.py``)
decides when something is a finding and calls :func:`record_finding`; the lab
clock calls :func:`refresh` and :func:`publish_due` every simulated minute.

State is per account and region, one detector each, as in GuardDuty. Set
files are read from the local cloud's own S3 (moto's backend, in-process) and
only the TXT format is understood.
"""

from __future__ import annotations

import copy
import functools
import importlib
import ipaddress
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator
from moto.moto_api._internal import mock_random
from moto.utilities.utils import get_partition

from labkit.local import guardduty_sets as sets
from labkit.local.registry import ServiceError

logger = logging.getLogger(__name__)

PUBLISHING_FREQUENCIES = {
    "FIFTEEN_MINUTES": timedelta(minutes=15),
    "ONE_HOUR": timedelta(hours=1),
    "SIX_HOURS": timedelta(hours=6),
}
SET_LIMITS = {"threat": 6, "ip": 1}
NOT_OWNED = (
    "The request is rejected because the input detectorId is not owned by the "
    "current account."
)

_lock = threading.RLock()


@dataclass
class _Record:
    finding: dict[str, Any]
    published_at: datetime | None = None
    pending: bool = True


@dataclass
class Detector:
    """One account's GuardDuty detector in one region, and all it holds."""

    detector_id: str
    account_id: str
    region: str
    created_at: datetime
    updated_at: datetime
    enabled: bool
    frequency: str
    tags: dict[str, str] = field(default_factory=dict)
    data_sources: dict[str, Any] = field(default_factory=dict)
    features: list[dict[str, Any]] = field(default_factory=list)
    sets: dict[str, sets.ListSet] = field(default_factory=dict)
    records: dict[str, _Record] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        """The detector's ARN, as TagResource takes it."""
        partition = get_partition(self.region)
        return (
            f"arn:{partition}:guardduty:{self.region}:{self.account_id}"
            f":detector/{self.detector_id}"
        )


_DETECTORS: dict[tuple[str, str], Detector] = {}


def lock() -> threading.RLock:
    """Return the store's lock, to read several findings consistently."""
    return _lock


def iso(moment: datetime) -> str:
    """Return ``moment`` as GuardDuty writes times: ISO 8601, milliseconds, Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def reset() -> None:
    """Forget every detector, set and finding (moto's reset, and tests)."""
    with _lock:
        _DETECTORS.clear()


def find_detector(account_id: str, region: str) -> Detector | None:
    """Return the account's detector in ``region``, or None if it has none."""
    return _DETECTORS.get((account_id, region))


def enabled_detector_id(account_id: str, region: str) -> str | None:
    """Return the id of the region's detector if it exists and is enabled."""
    detector = find_detector(account_id, region)
    return detector.detector_id if detector and detector.enabled else None


def get_detector(account_id: str, region: str, detector_id: str) -> Detector:
    """Return the detector with this id, or fail as GuardDuty does."""
    detector = find_detector(account_id, region)
    if detector is None or detector.detector_id != detector_id:
        raise ServiceError("BadRequestException", NOT_OWNED, 400)
    return detector


def create_detector(
    account_id: str,
    region: str,
    *,
    enable: bool,
    now: datetime,
    frequency: str | None = None,
    tags: dict[str, str] | None = None,
    data_sources: dict[str, Any] | None = None,
    features: list[dict[str, Any]] | None = None,
) -> Detector:
    """Create the region's detector; a second one is refused, as in GuardDuty."""
    with _lock:
        if find_detector(account_id, region) is not None:
            raise ServiceError(
                "BadRequestException",
                "The request is rejected because a detector already exists for "
                "the current account.",
            )
        detector = Detector(
            detector_id=mock_random.get_random_hex(32),
            account_id=account_id,
            region=region,
            created_at=now,
            updated_at=now,
            enabled=enable,
            frequency=frequency or "SIX_HOURS",
            tags=dict(tags or {}),
            data_sources=dict(data_sources or {}),
            features=list(features or []),
        )
        _DETECTORS[(account_id, region)] = detector
    logger.info("created GuardDuty detector %s in %s", detector.detector_id, region)
    return detector


def delete_detector(account_id: str, region: str, detector_id: str) -> None:
    """Delete the detector with its sets and findings."""
    with _lock:
        get_detector(account_id, region, detector_id)
        del _DETECTORS[(account_id, region)]
    logger.info("deleted GuardDuty detector %s in %s", detector_id, region)


def all_detectors() -> list[Detector]:
    """Return every detector of every account and region."""
    with _lock:
        return list(_DETECTORS.values())


def add_set(detector: Detector, kind: str, **values: Any) -> sets.ListSet:
    """Add a set to ``detector``; ``values`` are the ListSet fields but id and kind."""
    with _lock:
        count = sum(1 for s in detector.sets.values() if s.kind == kind)
        if count >= SET_LIMITS[kind]:
            label = "ThreatIntelSets" if kind == "threat" else "IPSets"
            raise ServiceError(
                "BadRequestException",
                f"The request is rejected because the current account cannot "
                f"create more than {SET_LIMITS[kind]} {label}.",
            )
        listed = sets.ListSet(
            set_id=mock_random.get_random_hex(32), kind=kind, **values
        )
        detector.sets[listed.set_id] = listed
    logger.info("created %s set %s (%s)", kind, listed.set_id, listed.name)
    return listed


def get_set(detector: Detector, kind: str, set_id: str) -> sets.ListSet:
    """Return the set, or fail as GuardDuty does for an unknown id."""
    found = detector.sets.get(set_id)
    if found is None or found.kind != kind:
        member = "threatIntelSetId" if kind == "threat" else "ipSetId"
        raise ServiceError(
            "BadRequestException",
            f"The request is rejected because the input {member} is not owned "
            "by the current account.",
        )
    return found


def refresh(now: datetime) -> None:
    """Finish pending set changes: ACTIVATING sets are read, DEACTIVATING stop.

    Args:
        now: the lab time (kept for symmetry with :func:`publish_due`).
    """
    with _lock:
        for detector in _DETECTORS.values():
            for listed in detector.sets.values():
                if listed.status == "DEACTIVATING":
                    listed.status, listed.networks = "INACTIVE", []
                elif listed.status == "ACTIVATING":
                    sets.load(listed, detector.account_id, detector.region)
                    if listed.status == "ERROR":
                        logger.warning(
                            "%s set %s failed: %s",
                            listed.kind,
                            listed.name,
                            listed.error,
                        )
                    else:
                        logger.info(
                            "%s set %s is ACTIVE at %s",
                            listed.kind,
                            listed.name,
                            iso(now),
                        )


def _networks(
    account_id: str, region: str, kind: str
) -> list[tuple[ipaddress.IPv4Network, str, str]]:
    detector = find_detector(account_id, region)
    if detector is None or not detector.enabled:
        return []
    with _lock:
        return [
            (network, listed.set_id, listed.name)
            for listed in detector.sets.values()
            if listed.kind == kind and listed.status == "ACTIVE"
            for network in listed.networks
        ]


def active_threat_networks(
    account_id: str, region: str
) -> list[tuple[ipaddress.IPv4Network, str, str]]:
    """Return (network, set id, set name) of the enabled detector's ACTIVE threat sets."""
    return _networks(account_id, region, "threat")


def trusted_networks(
    account_id: str, region: str
) -> list[tuple[ipaddress.IPv4Network, str, str]]:
    """Return (network, set id, set name) of the enabled detector's ACTIVE IP sets."""
    return _networks(account_id, region, "ip")


def threat_file_sha256(account_id: str, region: str, set_id: str) -> str | None:
    """Return the SHA-256 of the file an ACTIVE set was read from, if known."""
    detector = find_detector(account_id, region)
    listed = detector.sets.get(set_id) if detector else None
    return listed.sha256 if listed else None


# Findings -------------------------------------------------------------------


@functools.cache
def shape(name: str) -> Shape:
    """Return a shape of botocore's GuardDuty model, such as ``"Finding"``."""
    model = botocore.session.get_session().get_service_model("guardduty")
    return model.shape_for(name)


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
) -> tuple[dict[str, Any], bool]:
    """Record one occurrence of an activity as a finding, new or repeated.

    The first occurrence of a fingerprint makes a new finding; later ones keep
    its id, raise ``Service.Count`` and move ``EventLastSeen`` and
    ``UpdatedAt`` (and take the latest action and evidence), as GuardDuty
    does. The caller decides whether the detector is enabled
    (:func:`enabled_detector_id`).

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
    with _lock:
        detector = find_detector(account_id, region)
        if detector is None or detector.detector_id != detector_id:
            raise LookupError(f"no detector {detector_id!r} in {account_id}/{region}")
        finding_id = detector.fingerprints.get(fingerprint)
        if finding_id is not None:
            record = detector.records[finding_id]
            _repeat(record.finding, action, evidence, additional_info, now)
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
        )
        detector.records[finding["Id"]] = _Record(finding)
        detector.fingerprints[fingerprint] = finding["Id"]
    logger.info("new finding %s %s", finding["Type"], finding["Id"])
    return copy.deepcopy(finding), True


def _new_finding(
    detector: Detector, *, info: dict[str, Any], role: str, now: datetime, **given: Any
) -> dict[str, Any]:
    finding_id = mock_random.get_random_hex(32)
    stamp = iso(now)
    service: dict[str, Any] = {
        "Action": copy.deepcopy(given["action"]),
        "Archived": False,
        "Count": 1,
        "DetectorId": detector.detector_id,
        "EventFirstSeen": stamp,
        "EventLastSeen": stamp,
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
) -> None:
    service = finding["Service"]
    service["Count"] += 1
    service["EventLastSeen"] = finding["UpdatedAt"] = iso(now)
    service["Action"] = copy.deepcopy(action)
    if evidence is not None:
        service["Evidence"] = copy.deepcopy(evidence)
    if info:
        merged = {**json.loads(service["AdditionalInfo"]["Value"]), **info}
        service["AdditionalInfo"]["Value"] = json.dumps(merged, sort_keys=True)


def findings(detector: Detector) -> list[dict[str, Any]]:
    """Return the detector's findings, oldest first (the live objects: copy them)."""
    with _lock:
        return [record.finding for record in detector.records.values()]


def set_archived(detector: Detector, finding_ids: list[str], archived: bool) -> None:
    """Archive or unarchive the findings with these ids; unknown ids are skipped."""
    with _lock:
        for finding_id in finding_ids:
            record = detector.records.get(finding_id)
            if record is not None:
                record.finding["Service"]["Archived"] = archived


# Publishing -----------------------------------------------------------------


def to_wire(value: Any, member: Shape) -> Any:
    """Rename a PascalCase value's members to their serialized (camelCase) names.

    Walks ``member`` (a botocore shape) so every key gets the name GuardDuty
    writes on the wire, including the irregular ones (``ProductCodes.Code`` is
    ``productCodeId``). Timestamps become ISO strings.

    Raises:
        ValueError: a key is not a member of the shape.
    """
    if member.type_name == "structure":
        out = {}
        for key, item in value.items():
            if key not in member.members:  # type: ignore[attr-defined]
                raise ValueError(f"{key!r} is not a member of {member.name}")
            child = member.members[key]  # type: ignore[attr-defined]
            out[child.serialization.get("name", key)] = to_wire(item, child)
        return out
    if member.type_name == "list":
        return [to_wire(item, member.member) for item in value]  # type: ignore[attr-defined]
    if member.type_name == "map":
        return {key: to_wire(item, member.value) for key, item in value.items()}  # type: ignore[attr-defined]
    if member.type_name == "timestamp" and isinstance(value, datetime):
        return iso(value)
    if member.type_name in ("double", "float") and float(value).is_integer():
        # GuardDuty's events write whole-number doubles without ".0" ("severity": 8).
        return int(value)
    return value


def finding_to_event_detail(finding: dict[str, Any]) -> dict[str, Any]:
    """Return a finding in the camelCase form of a ``GuardDuty Finding`` event.

    ``service.additionalInfo`` keeps ``value`` and ``type`` and also carries
    the decoded JSON of ``value`` (``sample``, ``threatListName``...), as
    GuardDuty's recent events do, so event patterns can match on them.
    """
    detail: dict[str, Any] = to_wire(finding, shape("Finding"))
    info = detail.get("service", {}).get("additionalInfo")
    if info and info.get("value"):
        decoded = json.loads(info["value"])
        if isinstance(decoded, dict):
            detail["service"]["additionalInfo"] = {**decoded, **info}
    return detail


def publish_due(now: datetime) -> list[str]:
    """Publish new findings at once and updates at the publishing frequency.

    An update is published once the detector's FindingPublishingFrequency has
    passed since that finding was last published. Archived findings and
    findings of disabled detectors are not published.

    Returns:
        The ids of the EventBridge events put.
    """
    events = importlib.import_module("labkit.local.events")
    due: list[tuple[Detector, _Record]] = []
    with _lock:
        for detector in _DETECTORS.values():
            if not detector.enabled:
                continue
            wait = PUBLISHING_FREQUENCIES.get(detector.frequency, timedelta(hours=6))
            for record in detector.records.values():
                if record.finding["Service"]["Archived"] or not record.pending:
                    continue
                if record.published_at is None or now - record.published_at >= wait:
                    record.published_at, record.pending = now, False
                    due.append((detector, copy.deepcopy(record)))
    event_ids = []
    for detector, record in due:
        event_id = events.emit(
            detector.account_id,
            detector.region,
            source="aws.guardduty",
            detail_type="GuardDuty Finding",
            detail=finding_to_event_detail(record.finding),
            resources=[],
            time=now,
        )
        event_ids.append(event_id)
        logger.info("published finding %s as event %s", record.finding["Id"], event_id)
    return event_ids
