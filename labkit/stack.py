"""Deploying, reading and deleting the lab's CloudFormation stack.

The same template and the same CloudFormation calls serve both modes. The
template and the remediation code come from ``labkit.artifacts``; the wait for
each operation, with its progress bar, is in ``labkit.stack_progress``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError
from tqdm.auto import tqdm

from labkit.artifacts import package_remediation, planned_resources, read_template
from labkit.errors import NotDeployedError, StackError
from labkit.lab import Lab
from labkit.stack_progress import (
    StackEvents,
    describe_stack,
    failure_reason,
    wait_for_stack,
)
from labkit.template import pseudo_parameters

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
# An editable install keeps the package in the clone, next to cfn/.
TEMPLATE_PATH = _PACKAGE_DIR.parent / "cfn" / "security-workshop.yaml"
STACK_TAG = {"Key": "labkit", "Value": "security-workshop"}

_USABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_DELETE_HINT = "delete it with labkit.delete_stack(lab), then deploy again"
_DEPLOY_HINT = (
    "run notebooks/00-getting-started.ipynb first, or deploy it with "
    "labkit.deploy_stack(lab, detector_id=...)"
)


def _outputs(description: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


def deploy_stack(
    lab: Lab,
    *,
    detector_id: str,
    email: str | None = None,
    progress: bool = True,
    timeout_minutes: float = 30,
) -> dict[str, str]:
    """Deploy the lab's stack, or reuse it when it is already deployed.

    A stack already complete with the same template and parameters is reused
    as it is; one with other code or parameters is updated; one in progress
    is waited for. The wait shows a progress bar of resources completed.

    Args:
        lab: the connected lab.
        detector_id: the GuardDuty detector (from ``enable_guardduty``).
        email: an address to subscribe to the alert topics; without it, the
            alerts reach only the lab inbox.
        progress: show the progress bar.
        timeout_minutes: how long to wait before giving up.

    Returns:
        The stack's outputs, by output key.

    Raises:
        StackError: the stack failed, or is in a failed state from before.
        WaitTimeoutError: the stack was still in progress at the timeout.
    """
    cfn = lab.client("cloudformation")
    body, total = read_template(TEMPLATE_PATH)
    wait: dict[str, Any] = {
        "total": total,
        "progress": progress,
        "timeout_minutes": timeout_minutes,
    }
    current = _settled(lab, cfn, wait)
    params = {"DetectorId": detector_id, **package_remediation(lab)}
    if email:
        params["EmailAddress"] = email
    if _uses_existing_recorder(lab, current):
        params["UseExistingConfigRecorder"] = "true"
    pseudo = pseudo_parameters(lab.account_id, lab.region, lab.stack_name)
    wait["total"] = planned_resources(body, params, pseudo)

    if current is None:
        stack_id, events, goal = _create(lab, body, params), StackEvents(), "CREATE"
    elif _unchanged(cfn, current, body, params):
        logger.info("Stack %s is already deployed: reusing it", lab.stack_name)
        if progress:
            tqdm.write(
                f"{lab.stack_name}: {current['StackStatus']}, already deployed "
                "with this template and parameters; nothing changed"
            )
        return _outputs(current)
    else:
        events = StackEvents()
        events.prime(cfn, current["StackId"])
        if not _update(lab, body, params):
            return _outputs(current)
        stack_id, goal = current["StackId"], "UPDATE"

    status, final = wait_for_stack(lab, stack_id, events=events, **wait)
    if status != f"{goal}_COMPLETE" or final is None:
        raise StackError(
            f"stack {lab.stack_name!r} ended in {status}: "
            f"{events.first_failure()}; {_DELETE_HINT}"
        )
    logger.info("Stack %s is %s", lab.stack_name, status)
    return _outputs(final)


def _settled(lab: Lab, cfn: Any, wait: dict[str, Any]) -> dict[str, Any] | None:
    """Wait out an operation in progress; refuse a stack left failed."""
    current = describe_stack(cfn, lab.stack_name)
    if current is not None and current["StackStatus"].endswith("_IN_PROGRESS"):
        logger.info("Stack %s is %s: waiting", lab.stack_name, current["StackStatus"])
        wait_for_stack(lab, current["StackId"], events=StackEvents(), **wait)
        current = describe_stack(cfn, lab.stack_name)
    if current is None or current["StackStatus"] == "DELETE_COMPLETE":
        return None
    _refuse_failed(cfn, lab.stack_name, current)
    return current


def _refuse_failed(cfn: Any, name: str, current: dict[str, Any]) -> None:
    status = current["StackStatus"]
    if status in _USABLE:
        return
    reason = failure_reason(cfn, current["StackId"])
    raise StackError(f"stack {name!r} is {status}: {reason}; {_DELETE_HINT}")


def _parameter_list(params: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]


def _create(lab: Lab, body: str, params: dict[str, str]) -> str:
    created = lab.client("cloudformation").create_stack(
        StackName=lab.stack_name,
        TemplateBody=body,
        Parameters=_parameter_list(params),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Tags=[dict(STACK_TAG)],
    )
    logger.info("Creating stack %s in %s", lab.stack_name, lab.region)
    return str(created["StackId"])


def _uses_existing_recorder(lab: Lab, current: dict[str, Any] | None) -> bool:
    """Say whether the stack must use the account's own AWS Config recorder.

    A region has at most one configuration recorder. A deployed stack keeps
    the choice it was made with; a new one uses the account's recorder when
    there is one, instead of failing to create its own.
    """
    if current is not None:
        deployed = {
            p["ParameterKey"]: p.get("ParameterValue")
            for p in current.get("Parameters", [])
        }
        return deployed.get("UseExistingConfigRecorder") == "true"
    config = lab.client("config")
    recorders = config.describe_configuration_recorders()["ConfigurationRecorders"]
    if recorders:
        logger.info(
            "AWS Config already records in %s (%s): the lab's rules will use it",
            lab.region,
            recorders[0]["name"],
        )
    return bool(recorders)


def _unchanged(
    cfn: Any, current: dict[str, Any], body: str, params: dict[str, str]
) -> bool:
    deployed = {
        p["ParameterKey"]: p.get("ParameterValue")
        for p in current.get("Parameters", [])
    }
    if any(deployed.get(key) != value for key, value in params.items()):
        return False
    template = cfn.get_template(StackName=current["StackId"], TemplateStage="Original")
    return bool(template.get("TemplateBody") == body)


def _update(lab: Lab, body: str, params: dict[str, str]) -> bool:
    """Start an update; return False when CloudFormation sees nothing to do."""
    try:
        lab.client("cloudformation").update_stack(
            StackName=lab.stack_name,
            TemplateBody=body,
            Parameters=_parameter_list(params),
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Tags=[dict(STACK_TAG)],
        )
    except ClientError as error:
        message = error.response["Error"].get("Message", "")
        if "No updates are to be performed" in message:
            return False
        raise StackError(
            f"stack {lab.stack_name!r} could not be updated to the new "
            f"template or parameters: {message}; {_DELETE_HINT}"
        ) from error
    logger.info("Updating stack %s in %s", lab.stack_name, lab.region)
    return True


def stack_outputs(lab: Lab) -> dict[str, str]:
    """Return the deployed stack's outputs, by output key.

    Raises:
        NotDeployedError: the stack does not exist or is not complete.
    """
    current = describe_stack(lab.client("cloudformation"), lab.stack_name)
    if current is None or current["StackStatus"] not in _USABLE:
        state = "does not exist" if current is None else f"is {current['StackStatus']}"
        raise NotDeployedError(
            f"stack {lab.stack_name!r} {state} in {lab.region!r}; {_DEPLOY_HINT}"
        )
    return _outputs(current)


def stack_resources(lab: Lab) -> pd.DataFrame:
    """List the stack's resources as CloudFormation reports them.

    Returns:
        One row per resource, columns ``logical_id``, ``type``,
        ``physical_id`` (missing until created) and ``status``.

    Raises:
        NotDeployedError: the stack does not exist.
    """
    paginator = lab.client("cloudformation").get_paginator("list_stack_resources")
    rows: list[dict[str, Any]] = []
    try:
        for page in paginator.paginate(StackName=lab.stack_name):
            for item in page["StackResourceSummaries"]:
                rows.append(
                    {
                        "logical_id": item["LogicalResourceId"],
                        "type": item["ResourceType"],
                        "physical_id": item.get("PhysicalResourceId"),
                        "status": item["ResourceStatus"],
                    }
                )
    except ClientError as error:
        if "does not exist" not in error.response["Error"].get("Message", ""):
            raise
        raise NotDeployedError(
            f"stack {lab.stack_name!r} does not exist in {lab.region!r}; {_DEPLOY_HINT}"
        ) from error
    return pd.DataFrame(rows, columns=["logical_id", "type", "physical_id", "status"])


def delete_stack(
    lab: Lab, *, progress: bool = True, timeout_minutes: float = 30
) -> None:
    """Delete the lab's stack and wait until it is gone.

    A stack that does not exist is left alone (nothing to do).

    Raises:
        StackError: the delete failed (DELETE_FAILED), usually because a
            bucket still holds objects.
        WaitTimeoutError: the delete was still running at the timeout.
    """
    cfn = lab.client("cloudformation")
    current = describe_stack(cfn, lab.stack_name)
    if current is None:
        logger.info("Stack %s does not exist: nothing to delete", lab.stack_name)
        return

    stack_id = current["StackId"]
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
    total = sum(len(page["StackResourceSummaries"]) for page in pages)
    events = StackEvents()
    events.prime(cfn, stack_id)
    cfn.delete_stack(StackName=stack_id)
    logger.info("Deleting stack %s in %s", lab.stack_name, lab.region)

    status, _ = wait_for_stack(
        lab,
        stack_id,
        events=events,
        total=total,
        progress=progress,
        timeout_minutes=timeout_minutes,
    )
    if status != "DELETE_COMPLETE":
        raise StackError(
            f"stack {lab.stack_name!r} is {status}: {events.first_failure()}; "
            "CloudFormation cannot delete a bucket that still holds objects: "
            "empty the lab's buckets (labkit's cleanup does), then delete again"
        )
    logger.info("Deleted stack %s", lab.stack_name)
