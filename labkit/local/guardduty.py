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
from labkit.local import guardduty_features as features
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
    _check_frequency(call.params.get("FindingPublishingFrequency"))
    changes = features.requested_changes(call.params)
    now = store.read_lab_time()
    state = features.initial_features(now)
    features.apply_changes(state, changes, now)
    detector = store.create_detector(
        call.account_id,
        call.region,
        enable=bool(call.params.get("Enable", True)),
        now=now,
        frequency=call.params.get("FindingPublishingFrequency"),
        tags=call.params.get("Tags"),
        features=state,
    )
    return {"DetectorId": detector.detector_id}


def _check_frequency(frequency: str | None) -> None:
    if frequency is not None and frequency not in store.PUBLISHING_FREQUENCIES:
        raise bad_request(
            f"FindingPublishingFrequency {frequency!r} is not one of {_FREQUENCIES}."
        )


@operation("guardduty", "GetDetector")
def get_detector(call: Call) -> dict[str, Any]:
    """Describe the detector: status, publishing frequency, protection plans, tags."""
    detector = store.get_called_detector(call)
    role = _SERVICE_ROLE.format(detector.account_id)
    return {
        "CreatedAt": store.iso(detector.created_at),
        "FindingPublishingFrequency": detector.frequency,
        "ServiceRole": role,
        "Status": "ENABLED" if detector.enabled else "DISABLED",
        "UpdatedAt": store.iso(detector.updated_at),
        "DataSources": features.data_source_results(detector.features, role),
        "Tags": dict(detector.tags),
        "Features": features.feature_results(detector.features),
    }


@operation("guardduty", "UpdateDetector")
def update_detector(call: Call) -> dict[str, Any]:
    """Enable or disable the detector, change its frequency or protection plans.

    Only the features (or data sources) named change; the others keep their
    state, as in GuardDuty (see :mod:`labkit.local.guardduty_features`).
    """
    with store.lock():
        detector = store.get_called_detector(call)
        frequency = call.params.get("FindingPublishingFrequency")
        _check_frequency(frequency)
        changes = features.requested_changes(call.params)
        now = store.read_lab_time()
        if frequency is not None:
            detector.frequency = frequency
        if "Enable" in call.params:
            detector.enabled = bool(call.params["Enable"])
        features.apply_changes(detector.features, changes, now)
        detector.updated_at = now
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
