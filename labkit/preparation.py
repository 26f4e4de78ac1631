"""Getting the lab ready for a scenario in one call.

Notebook 00 walks through the preparation step by step: GuardDuty on, the
stack deployed, the threat list uploaded and active. Each scenario notebook
starts with :func:`prepare_lab` instead, which does the same steps only where
they are still needed, so a scenario can be run on its own: after a restart of
the local cloud, or by a student who skipped notebook 00.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from labkit.errors import WaitTimeoutError
from labkit.guardduty import (
    THREAT_LIST_KEY,
    THREAT_LIST_NAME,
    activate_threat_list,
    enable_guardduty,
)
from labkit.lab import Lab
from labkit.stack import deploy_stack

logger = logging.getLogger(__name__)

# GuardDuty reads a new list within minutes; past this something is wrong.
_ACTIVATION_MINUTES = 15


def prepare_lab(lab: Lab, *, progress: bool = True) -> dict[str, str]:
    """Make the lab ready: GuardDuty on, the stack deployed, the list active.

    Every step is skipped when it is already done, so on a prepared lab this
    changes nothing and takes about a second. The threat list is uploaded
    again only when it is missing, not active, or does not hold the
    malicious instance's current Elastic IP.

    Args:
        lab: the connected lab.
        progress: show the progress bar if the stack has to be deployed.

    Returns:
        The stack's outputs, by output key, with ``DetectorId``.

    Raises:
        StackError: the stack failed, or is in a failed state from before.
        WaitTimeoutError: the stack, or the threat list, was not ready in time.
    """
    detector_id, _ = enable_guardduty(lab)
    outputs = deploy_stack(lab, detector_id=detector_id, progress=progress)
    outputs.setdefault("DetectorId", detector_id)

    status = _threat_list_status(lab, detector_id, outputs)
    if status not in ("ACTIVE", "ACTIVATING"):
        logger.info("Threat list %s is %s: uploading it", THREAT_LIST_NAME, status)
        activate_threat_list(lab, outputs)
        status = "ACTIVATING"
    waited = 0
    while status != "ACTIVE":
        if waited >= _ACTIVATION_MINUTES:
            raise WaitTimeoutError(
                f"threat list {THREAT_LIST_NAME!r} is still {status} after "
                f"{waited} minutes; read its ErrorDetails with "
                "get_threat_intel_set, then run prepare_lab(lab) again"
            )
        lab.advance(1)
        waited += 1
        status = _threat_list_status(lab, detector_id, outputs)
    return outputs


def _threat_list_status(lab: Lab, detector_id: str, outputs: dict[str, str]) -> str:
    """The lab list's status, or ``MISSING``/``STALE`` when it must be uploaded."""
    guardduty = lab.client("guardduty")
    set_ids = guardduty.list_threat_intel_sets(DetectorId=detector_id)
    for set_id in set_ids["ThreatIntelSetIds"]:
        listed = guardduty.get_threat_intel_set(
            DetectorId=detector_id, ThreatIntelSetId=set_id
        )
        if listed["Name"] == THREAT_LIST_NAME:
            if not _lists_address(lab, outputs, outputs["MaliciousIp"]):
                return "STALE"
            return str(listed["Status"])
    return "MISSING"


def _lists_address(lab: Lab, outputs: dict[str, str], address: str) -> bool:
    """Whether the uploaded list file holds ``address`` on a line of its own."""
    try:
        answer: dict[str, Any] = lab.client("s3").get_object(
            Bucket=outputs["ThreatListBucket"], Key=THREAT_LIST_KEY
        )
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("NoSuchKey", "NoSuchBucket"):
            raise
        return False
    lines = answer["Body"].read().decode().splitlines()
    return address in (line.strip() for line in lines)
