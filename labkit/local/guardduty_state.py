"""The local cloud's GuardDuty state: detectors, their sets, and the lock.

State is per account and region, one detector each, as in GuardDuty. A
detector holds its threat intel sets and IP sets and the records of its
findings; recording and publishing findings live in
:mod:`labkit.local.findings_store` and :mod:`labkit.local.finding_events`.
Set files are read from the local cloud's own S3 (moto's backend,
in-process) and only the TXT format is understood.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.moto_api._internal import mock_random
from moto.utilities.utils import get_partition

from labkit.local import guardduty_sets as sets
from labkit.local.registry import Call, ServiceError

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
class FindingRecord:
    """A finding as stored, with when it was last published and if it changed."""

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
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    sets: dict[str, sets.ListSet] = field(default_factory=dict)
    records: dict[str, FindingRecord] = field(default_factory=dict)
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


def read_lab_time() -> datetime:
    """Return the current time, which in the local cloud is the lab clock's."""
    return datetime.now(UTC)


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


def get_called_detector(call: Call) -> Detector:
    """Return the detector named by the call's ``DetectorId``, as GuardDuty does."""
    return get_detector(call.account_id, call.region, call.params["DetectorId"])


def create_detector(
    account_id: str,
    region: str,
    *,
    enable: bool,
    now: datetime,
    frequency: str | None = None,
    tags: dict[str, str] | None = None,
    features: dict[str, dict[str, Any]] | None = None,
) -> Detector:
    """Create the region's detector; a second one is refused, as in GuardDuty.

    ``features`` is its protection plans' state, as
    :mod:`labkit.local.guardduty_features` keeps it.
    """
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
            features=dict(features or {}),
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
        now: the lab time (kept for symmetry with ``publish_due``).
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
