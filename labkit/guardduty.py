"""Turning GuardDuty on for the lab, and activating the lab's threat list.

GuardDuty allows one detector per account and region, so the lab reuses the
account's detector when there is one. The detector's ``labkit`` tag records
what the lab did to it, and cleanup undoes exactly that:

- ``labkit=created``: the lab made the detector; cleanup deletes it.
- ``labkit=enabled``: the detector was there but disabled (suspended) and
  the lab turned it on; cleanup disables it again and removes the tag.
- no ``labkit`` tag: the account's detector, already on; cleanup leaves it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from labkit import findings
from labkit.errors import ConfigError, NotDeployedError
from labkit.lab import Lab

logger = logging.getLogger(__name__)

CREATED_TAG = {"labkit": "created"}
ENABLED_TAG = {"labkit": "enabled"}
THREAT_LIST_NAME = "Example-Threat-List"
THREAT_LIST_KEY = "threatlist/example-threat-list.txt"


def enable_guardduty(lab: Lab) -> tuple[str, bool]:
    """Turn GuardDuty on in the lab's region, or reuse the detector there.

    A detector that exists but is disabled (suspended) is turned on with
    UpdateDetector, since a disabled detector raises no findings. It is
    first tagged ``labkit=enabled`` (TagResource on its ARN), so that
    cleanup turns it off again, unless an earlier lab run made it (its tag
    is ``labkit=created``). Its other settings and tags are left as they
    are, and ``created`` is false.

    Args:
        lab: the connected lab.

    Returns:
        ``(detector_id, created)``: ``created`` is true when this call made
        the detector.
    """
    guardduty = lab.client("guardduty")
    detector_ids = guardduty.list_detectors()["DetectorIds"]
    if detector_ids:
        detector_id = str(detector_ids[0])
        _reuse_existing(lab, detector_id)
        return detector_id, False

    created = guardduty.create_detector(
        Enable=True,
        FindingPublishingFrequency="FIFTEEN_MINUTES",
        Tags=dict(CREATED_TAG),
    )
    detector_id = str(created["DetectorId"])
    logger.info("Enabled GuardDuty in %s: created detector %s", lab.region, detector_id)
    return detector_id, True


def _reuse_existing(lab: Lab, detector_id: str) -> None:
    guardduty = lab.client("guardduty")
    detector = guardduty.get_detector(DetectorId=detector_id)
    made_by_lab = detector.get("Tags", {}).get("labkit") == CREATED_TAG["labkit"]
    owner = "an earlier lab run" if made_by_lab else "the account"
    if detector.get("Status") == "DISABLED":
        if not made_by_lab:
            # Tagged before the change: a detector left on untagged would
            # never be turned off by cleanup, and would keep costing.
            guardduty.tag_resource(
                ResourceArn=_detector_arn(lab, detector_id), Tags=dict(ENABLED_TAG)
            )
            logger.info("Tagged GuardDuty detector %s labkit=enabled", detector_id)
        # A suspended detector raises no findings, so every later wait would
        # run to its timeout. Only Enable is sent: the frequency, data
        # sources and features stay the account's choice.
        guardduty.update_detector(DetectorId=detector_id, Enable=True)
        logger.info(
            "Enabled GuardDuty detector %s in %s (made by %s): it was DISABLED",
            detector_id,
            lab.region,
            owner,
        )
        return
    logger.info(
        "Reusing GuardDuty detector %s in %s (made by %s)",
        detector_id,
        lab.region,
        owner,
    )


def _detector_arn(lab: Lab, detector_id: str) -> str:
    """The detector's ARN, which TagResource takes (GetDetector does not give it)."""
    assert lab.session is not None
    partition = lab.session.get_partition_for_region(lab.region)
    return (
        f"arn:{partition}:guardduty:{lab.region}:{lab.account_id}"
        f":detector/{detector_id}"
    )


def activate_threat_list(lab: Lab, outputs: Mapping[str, str]) -> str:
    """Upload the lab's threat list and activate it on the detector.

    The list holds one address, the malicious instance's Elastic IP, which
    exists only once the stack is deployed.

    Args:
        lab: the connected lab.
        outputs: the stack's outputs, as :func:`labkit.deploy_stack` returns
            them; ``MaliciousIp`` and ``ThreatListBucket`` are used, and
            ``DetectorId`` when present.

    Returns:
        The threat intel set's id.

    Raises:
        NotDeployedError: an output is missing (the stack is not deployed).
    """
    from labkit import threatlist

    missing = [k for k in ("MaliciousIp", "ThreatListBucket") if not outputs.get(k)]
    if missing:
        raise NotDeployedError(
            f"stack outputs {missing!r} are missing (got keys "
            f"{sorted(outputs)!r}); deploy the lab first with "
            "labkit.deploy_stack(lab, detector_id=...) and pass its outputs"
        )
    detector_id = outputs.get("DetectorId") or _current_detector(lab)

    set_id = threatlist.upload_threat_list(
        lab.client("s3"),
        lab.client("guardduty"),
        detector_id=detector_id,
        bucket=outputs["ThreatListBucket"],
        key=THREAT_LIST_KEY,
        addresses=[outputs["MaliciousIp"]],
        name=THREAT_LIST_NAME,
    )
    return str(set_id)


def _current_detector(lab: Lab) -> str:
    detector_ids = lab.client("guardduty").list_detectors()["DetectorIds"]
    if not detector_ids:
        raise NotDeployedError(
            f"GuardDuty has no detector in {lab.region!r}; "
            "turn it on first with labkit.enable_guardduty(lab)"
        )
    return str(detector_ids[0])


@contextlib.contextmanager
def _known_detector(lab: Lab, detector_id: str) -> Iterator[None]:
    """Turn GuardDuty's refusal of a detector id into a ConfigError saying why."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        if details.get("Code") != "BadRequestException" or "detectorId" not in str(
            details.get("Message", "")
        ):
            raise
        raise ConfigError(
            f"detector {detector_id!r} is not a GuardDuty detector of this account "
            f"in {lab.region!r} ({details.get('Message')}); use the id that "
            "labkit.enable_guardduty(lab) returns, or outputs['DetectorId']"
        ) from error


def lab_findings(lab: Lab, detector_id: str) -> pd.DataFrame:
    """Return every finding of the detector as a DataFrame (see findings.COLUMNS).

    Raises:
        ConfigError: ``detector_id`` is not a detector of this account.
    """
    with _known_detector(lab, detector_id):
        return findings.fetch_findings(lab.client("guardduty"), detector_id)


def wait_for_findings(
    lab: Lab,
    detector_id: str,
    finding_types: Iterable[str],
    *,
    timeout_minutes: float = 30,
) -> pd.DataFrame:
    """Wait until the detector has a finding of every type in ``finding_types``.

    Locally the lab clock advances a minute at a time, so the wait takes
    seconds of real time; in AWS it checks once a minute, and GuardDuty
    usually needs five to fifteen minutes for its first findings.

    Returns:
        The findings of the awaited types (columns of findings.COLUMNS).

    Raises:
        ConfigError: a type is not a finding type, or ``detector_id`` is not
            a detector of this account.
        WaitTimeoutError: some type was still missing after ``timeout_minutes``.
    """
    with _known_detector(lab, detector_id):
        return findings.wait_for_findings(
            lab.client("guardduty"),
            detector_id,
            finding_types,
            timeout_minutes=timeout_minutes,
            step_minutes=1.0,
            advance=lab.advance,
        )


def finding_json(lab: Lab, detector_id: str, finding_id: str) -> dict[str, Any]:
    """Return one finding in full, as GetFindings returns it.

    Raises:
        ConfigError: ``detector_id`` is not a detector of this account.
        NotDeployedError: the detector has no finding ``finding_id``.
    """
    with _known_detector(lab, detector_id):
        answer = lab.client("guardduty").get_findings(
            DetectorId=detector_id, FindingIds=[finding_id]
        )
    if not answer["Findings"]:
        raise NotDeployedError(
            f"no finding {finding_id!r} in detector {detector_id!r}; pass an id "
            "from the id column of labkit.lab_findings(lab, detector_id)"
        )
    return dict(answer["Findings"][0])
