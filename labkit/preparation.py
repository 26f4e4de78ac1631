"""Getting the lab ready for a scenario in one call.

Notebook 00 walks through the preparation step by step: GuardDuty on, the
stack deployed, the threat list uploaded and active. Each scenario notebook
starts with :func:`prepare_lab` instead, which does the same steps only where
they are still needed, so a scenario can be run on its own: after a restart of
the local cloud, or by a student who skipped notebook 00.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from botocore.exceptions import ClientError

from labkit.errors import LabError, WaitTimeoutError
from labkit.guardduty import (
    THREAT_LIST_NAME,
    activate_threat_list,
    enable_guardduty,
)
from labkit.lab import Lab
from labkit.list_format import TxtLineError, parse_location, read_txt_list
from labkit.stack import deploy_stack
from labkit.threatlist import find_threat_intel_set

logger = logging.getLogger(__name__)

# GuardDuty reads a new list within minutes; past this something is wrong.
_ACTIVATION_MINUTES = 15


def prepare_lab(lab: Lab, *, progress: bool = True) -> dict[str, str]:
    """Make the lab ready: GuardDuty on, the stack deployed, the list active.

    Every step is skipped when it is already done, so on a prepared lab this
    changes nothing and takes about a second. The threat list is uploaded
    again only when it is missing, not active, or the file its set points
    at (its ``Location``) does not hold the malicious instance's current
    Elastic IP. In aws mode the wait for GuardDuty to read the list is real
    time, up to 15 minutes, checked once a minute.

    Args:
        lab: the connected lab.
        progress: show the progress bar if the stack has to be deployed,
            and in aws mode a line for each minute of waiting for the list.

    Returns:
        The stack's outputs, by output key, with ``DetectorId``.

    Raises:
        StackError: the stack failed, or is in a failed state from before.
        WaitTimeoutError: the stack, or the threat list, was not ready in time.
        LabError: the file the list's set points at cannot be read (such as
            AccessDenied); the message names the bucket and key.
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
        _report_wait(lab, status, waited + 1, progress)
        lab.advance(1)
        waited += 1
        status = _threat_list_status(lab, detector_id, outputs)
    return outputs


def _report_wait(lab: Lab, status: str, minute: int, progress: bool) -> None:
    """Say, in aws mode, that a real minute of waiting starts."""
    if lab.mode != "aws":
        return
    logger.info(
        "Threat list %s is %s: waiting minute %d of at most %d",
        THREAT_LIST_NAME,
        status,
        minute,
        _ACTIVATION_MINUTES,
    )
    if progress:
        print(
            f"Threat list {THREAT_LIST_NAME!r} is {status}: waiting a minute for "
            f"GuardDuty to read it ({minute} of at most {_ACTIVATION_MINUTES})",
            flush=True,
        )


def _threat_list_status(lab: Lab, detector_id: str, outputs: dict[str, str]) -> str:
    """The lab list's status, or ``MISSING``/``STALE`` when it must be uploaded."""
    found = find_threat_intel_set(
        lab.client("guardduty"), detector_id, THREAT_LIST_NAME
    )
    if found is None:
        return "MISSING"
    listed = found[1]
    location = str(listed.get("Location", ""))
    if not _lists_address(lab, location, outputs["MaliciousIp"]):
        return "STALE"
    return str(listed["Status"])


def _lists_address(lab: Lab, location: str, address: str) -> bool:
    """Whether the set's file at ``location`` lists ``address``, read as GuardDuty does.

    A location that is not an S3 object URL, a missing object and a file
    GuardDuty could not read all mean no: uploading again points the set at
    the lab's own file.
    """
    try:
        bucket, key = parse_location(location)
    except ValueError:
        return False
    try:
        answer: dict[str, Any] = lab.client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        detail = error.response.get("Error", {})
        code = detail.get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket"):
            return False
        raise LabError(
            f"cannot read threat list {THREAT_LIST_NAME!r} at s3://{bucket}/{key} "
            f"(its set's Location): {code} ({detail.get('Message', '')}); "
            "allow s3:GetObject on that object for these credentials (and "
            "kms:Decrypt if a KMS key encrypts it), or delete the set with "
            "delete_threat_intel_set so the lab uploads its own, then run "
            "prepare_lab(lab) again"
        ) from error
    try:
        networks = read_txt_list(answer["Body"].read().decode("utf-8"))
    except (TxtLineError, UnicodeDecodeError):
        return False
    wanted = ipaddress.IPv4Address(address)
    return any(wanted in network for network in networks)
