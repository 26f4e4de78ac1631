"""Deploying, reading and deleting the lab's CloudFormation stack.

The same template and the same CloudFormation calls serve both modes. The
remediation Lambda code is zipped from ``labkit/remediation/`` and uploaded to
the lab's artifact bucket first, under keys that change when the code does.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from botocore.exceptions import ClientError
from tqdm.auto import tqdm

from labkit import remediation
from labkit.errors import ConfigError, NotDeployedError, StackError, WaitTimeoutError
from labkit.lab import Lab

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
# An editable install keeps the package in the clone, next to cfn/.
TEMPLATE_PATH = _PACKAGE_DIR.parent / "cfn" / "security-workshop.yaml"
STACK_TAG = {"Key": "labkit", "Value": "security-workshop"}
POLL_SECONDS = 10.0
# Locally the wait blocks in the local cloud until its stack work settles or
# this many seconds pass, so the bar moves and nothing sleeps.
LOCAL_SETTLE_SECONDS = 0.25
MAX_TEMPLATE_BODY = 51_200

_STACK_TYPE = "AWS::CloudFormation::Stack"
_OP_STARTS = {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS"}
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "DELETE_SKIPPED"}
_USABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_DELETE_HINT = "delete it with labkit.delete_stack(lab), then deploy again"

# Seams for tests, which must not wait for real time.
_sleep = time.sleep
_clock = time.monotonic


def artifact_bucket_name(lab: Lab) -> str:
    """Return the name of the lab's artifact bucket in this account and region."""
    return f"labkit-artifacts-{lab.account_id}-{lab.region}"


def package_remediation(lab: Lab) -> dict[str, str]:
    """Zip the remediation handlers and upload them to the artifact bucket.

    The bucket ``labkit-artifacts-<account>-<region>`` is created if missing.
    Each key holds its zip's SHA-256, so changed code gets a new key and the
    stack picks it up; unchanged code is not uploaded again.

    Returns:
        ``ArtifactBucket``, ``IsolateCodeKey`` and ``RevokeCodeKey``.
    """
    s3 = lab.client("s3")
    bucket = artifact_bucket_name(lab)
    _ensure_bucket(s3, bucket, lab.region)

    keys = {"ArtifactBucket": bucket}
    for parameter, module in remediation.CODE_KEY_PARAMETERS.items():
        body = remediation.build_zip(module)
        digest = hashlib.sha256(body).hexdigest()
        key = f"remediation/{module}/{digest}.zip"
        _upload_once(s3, bucket, key, body)
        keys[parameter] = key
    return keys


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code not in ("404", "NoSuchBucket"):
            raise StackError(
                f"artifact bucket {bucket!r} cannot be used ({code}); it may "
                "belong to another account: check the credentials' account"
            ) from error

    # us-east-1 is the one region that refuses an explicit LocationConstraint.
    options: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        options["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**options)
    logger.info("Created artifact bucket %s", bucket)


def _upload_once(s3: Any, bucket: str, key: str, body: bytes) -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchKey"):
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/zip")
    logger.info("Uploaded s3://%s/%s", bucket, key)


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation's short tags (``!Ref`` ...)."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node)


_CfnLoader.add_multi_constructor("!", _any_tag)


def _read_template() -> tuple[str, int]:
    """Return the template's text and how many resources it declares."""
    if not TEMPLATE_PATH.is_file():
        raise ConfigError(
            f"the lab template is missing: expected {str(TEMPLATE_PATH)!r}; "
            "install labkit from a clone of the lab repository (pip install -e .)"
        )
    body = TEMPLATE_PATH.read_text(encoding="utf-8")
    if len(body.encode("utf-8")) > MAX_TEMPLATE_BODY:
        raise ConfigError(
            f"{TEMPLATE_PATH.name} is {len(body.encode('utf-8'))} bytes, over "
            f"CloudFormation's {MAX_TEMPLATE_BODY}-byte TemplateBody limit; "
            "shorten the template"
        )
    parsed = yaml.load(body, Loader=_CfnLoader)  # noqa: S506 - safe subclass
    return body, len(parsed.get("Resources", {}))


def _describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in error.response["Error"].get("Message", ""):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def _outputs(description: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


@dataclass
class _Events:
    """The events of one stack operation, gathered across polls."""

    stop_at: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def prime(self, cfn: Any, stack: str) -> None:
        """Mark every event so far as belonging to an earlier operation."""
        page = cfn.describe_stack_events(StackName=stack)["StackEvents"]
        self.stop_at = page[0]["EventId"] if page else None

    def collect(self, cfn: Any, stack: str) -> None:
        fresh: list[dict[str, Any]] = []
        paginator = cfn.get_paginator("describe_stack_events")
        for page in paginator.paginate(StackName=stack):
            done, batch = self._take(page["StackEvents"])
            fresh.extend(batch)
            if done:
                break
        if fresh:
            self.stop_at = fresh[0]["EventId"]
        self.events = list(reversed(fresh)) + self.events

    def _take(self, page: list[dict[str, Any]]) -> tuple[bool, list[dict[str, Any]]]:
        # Events come newest first: stop at the last one already seen, or at
        # the start of the operation when nothing has been seen yet.
        batch: list[dict[str, Any]] = []
        for event in page:
            if event["EventId"] == self.stop_at:
                return True, batch
            batch.append(event)
            if self.stop_at is None and _is_op_start(event):
                return True, batch
        return False, batch

    def done(self) -> int:
        latest: dict[str, str] = {}
        for event in self.events:  # oldest first, so the last status wins
            if event.get("ResourceType") != _STACK_TYPE:
                latest[event["LogicalResourceId"]] = event.get("ResourceStatus", "")
        return sum(status in _DONE for status in latest.values())

    def first_failure(self) -> str:
        failed = [
            e for e in self.events if e.get("ResourceStatus", "").endswith("FAILED")
        ]
        own = [e for e in failed if e.get("ResourceType") != _STACK_TYPE] or failed
        if not own:
            return "no failure reason was recorded"
        event = own[0]
        return (
            f"{event['LogicalResourceId']} ({event.get('ResourceType', '?')}) "
            f"{event['ResourceStatus']}: {event.get('ResourceStatusReason', '')}"
        )


def _is_op_start(event: dict[str, Any]) -> bool:
    return (
        event.get("ResourceType") == _STACK_TYPE
        and event.get("LogicalResourceId") == event.get("StackName")
        and event.get("ResourceStatus") in _OP_STARTS
    )


def _failed_reason(cfn: Any, stack: str) -> str:
    events = _Events()
    events.collect(cfn, stack)
    return events.first_failure()


def _wait(
    lab: Lab,
    stack_id: str,
    *,
    events: _Events,
    total: int,
    progress: bool,
    timeout_minutes: float,
) -> tuple[str, dict[str, Any] | None]:
    """Poll the stack until no operation is in progress; return its status."""
    cfn = lab.client("cloudformation")
    deadline = _clock() + timeout_minutes * 60
    bar = tqdm(total=total, desc=lab.stack_name, unit="resource", disable=not progress)
    with bar:
        while True:
            description = _describe(cfn, stack_id)
            status = description["StackStatus"] if description else "DELETE_COMPLETE"
            if description is not None:
                events.collect(cfn, stack_id)
            bar.update(min(events.done(), total) - bar.n)
            bar.set_postfix_str(status)
            if not status.endswith("_IN_PROGRESS"):
                if status in _DONE:
                    # Resources whose Condition is false (the e-mail
                    # subscriptions without an address) are never made:
                    # the bar ends at what the stack really holds.
                    bar.total = max(events.done(), bar.n)
                    bar.update(bar.total - bar.n)
                return status, description
            if _clock() > deadline:
                raise WaitTimeoutError(
                    f"stack {lab.stack_name!r} is still {status} after "
                    f"{timeout_minutes:g} minutes; call the same labkit "
                    "function again to keep waiting, or look at "
                    "labkit.stack_resources(lab)"
                )
            _pause(lab)


def _pause(lab: Lab) -> None:
    if lab.mode == "local":
        from labkit.local import control

        assert lab.endpoint_url is not None
        control.request(
            lab.endpoint_url, "cloudformation/settle", {"timeout": LOCAL_SETTLE_SECONDS}
        )
        return
    _sleep(POLL_SECONDS)


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
    body, total = _read_template()
    wait: dict[str, Any] = {
        "total": total,
        "progress": progress,
        "timeout_minutes": timeout_minutes,
    }
    current = _settled(lab, cfn, wait)
    params = {"DetectorId": detector_id, **package_remediation(lab)}
    if email:
        params["EmailAddress"] = email

    if current is None:
        stack_id, events, goal = _create(lab, body, params), _Events(), "CREATE"
    elif _unchanged(cfn, current, body, params):
        logger.info("Stack %s is already deployed: reusing it", lab.stack_name)
        return _outputs(current)
    else:
        events = _Events()
        events.prime(cfn, current["StackId"])
        if not _update(lab, body, params):
            return _outputs(current)
        stack_id, goal = current["StackId"], "UPDATE"

    status, final = _wait(lab, stack_id, events=events, **wait)
    if status != f"{goal}_COMPLETE" or final is None:
        raise StackError(
            f"stack {lab.stack_name!r} ended in {status}: "
            f"{events.first_failure()}; {_DELETE_HINT}"
        )
    logger.info("Stack %s is %s", lab.stack_name, status)
    return _outputs(final)


def _settled(lab: Lab, cfn: Any, wait: dict[str, Any]) -> dict[str, Any] | None:
    """Wait out an operation in progress; refuse a stack left failed."""
    current = _describe(cfn, lab.stack_name)
    if current is not None and current["StackStatus"].endswith("_IN_PROGRESS"):
        logger.info("Stack %s is %s: waiting", lab.stack_name, current["StackStatus"])
        _wait(lab, current["StackId"], events=_Events(), **wait)
        current = _describe(cfn, lab.stack_name)
    if current is None or current["StackStatus"] == "DELETE_COMPLETE":
        return None
    _refuse_failed(cfn, lab.stack_name, current)
    return current


def _refuse_failed(cfn: Any, name: str, current: dict[str, Any]) -> None:
    status = current["StackStatus"]
    if status in _USABLE:
        return
    reason = _failed_reason(cfn, current["StackId"])
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
    current = _describe(lab.client("cloudformation"), lab.stack_name)
    if current is None or current["StackStatus"] not in _USABLE:
        state = "does not exist" if current is None else f"is {current['StackStatus']}"
        raise NotDeployedError(
            f"stack {lab.stack_name!r} {state} in {lab.region!r}; "
            "deploy it first with labkit.deploy_stack(lab, detector_id=...)"
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
            f"stack {lab.stack_name!r} does not exist in {lab.region!r}; "
            "deploy it first with labkit.deploy_stack(lab, detector_id=...)"
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
    current = _describe(cfn, lab.stack_name)
    if current is None:
        logger.info("Stack %s does not exist: nothing to delete", lab.stack_name)
        return

    stack_id = current["StackId"]
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
    total = sum(len(page["StackResourceSummaries"]) for page in pages)
    events = _Events()
    events.prime(cfn, stack_id)
    cfn.delete_stack(StackName=stack_id)
    logger.info("Deleting stack %s in %s", lab.stack_name, lab.region)

    status, _ = _wait(
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
