"""GuardDuty findings as EventBridge events: the wire shape and publishing.

Findings are stored in the PascalCase form boto3 returns from GetFindings;
``GuardDuty Finding`` events carry them in GuardDuty's camelCase wire form.
:func:`to_wire` renames a value member by member from botocore's model, and
:func:`publish_due` (called by the lab clock every simulated minute) puts the
events that are due, new findings at once and updates at the detector's
publishing frequency.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import botocore.session
from botocore.model import Shape

from labkit.local import guardduty_state as state

logger = logging.getLogger(__name__)


@functools.cache
def shape(name: str) -> Shape:
    """Return a shape of botocore's GuardDuty model, such as ``"Finding"``."""
    model = botocore.session.get_session().get_service_model("guardduty")
    return model.shape_for(name)


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
        return state.iso(value)
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


def _collect_due(now: datetime) -> list[tuple[state.Detector, state.FindingRecord]]:
    due: list[tuple[state.Detector, state.FindingRecord]] = []
    with state.lock():
        for detector in state.all_detectors():
            if not detector.enabled:
                continue
            wait = state.PUBLISHING_FREQUENCIES.get(
                detector.frequency, timedelta(hours=6)
            )
            for record in detector.records.values():
                if record.finding["Service"]["Archived"] or not record.pending:
                    continue
                if record.published_at is None or now - record.published_at >= wait:
                    record.published_at, record.pending = now, False
                    due.append((detector, copy.deepcopy(record)))
    return due


def publish_due(now: datetime) -> list[str]:
    """Publish new findings at once and updates at the publishing frequency.

    An update is published once the detector's FindingPublishingFrequency has
    passed since that finding was last published. Archived findings and
    findings of disabled detectors are not published.

    Returns:
        The ids of the EventBridge events put.
    """
    # Looked up at each call, so a stand-in put in sys.modules (tests) is used.
    events = importlib.import_module("labkit.local.events")
    event_ids = []
    for detector, record in _collect_due(now):
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
