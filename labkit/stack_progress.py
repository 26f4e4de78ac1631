"""Following a stack operation to its end, with a progress bar of resources.

CloudFormation reports progress as stack events, newest first. The events of
the operation under way are gathered across polls, and the bar counts the
resources whose latest event is a finished status.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from tqdm.auto import tqdm

from labkit.errors import WaitTimeoutError
from labkit.lab import Lab

logger = logging.getLogger(__name__)

POLL_SECONDS = 10.0
# Locally the wait blocks in the local cloud until its stack work settles or
# this many seconds pass, so the bar moves and nothing sleeps.
LOCAL_SETTLE_SECONDS = 0.25

_STACK_TYPE = "AWS::CloudFormation::Stack"
_OP_STARTS = {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS"}
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "DELETE_SKIPPED"}

# Seams for tests, which must not wait for real time.
_sleep = time.sleep
_clock = time.monotonic


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """Return a stack's description, or None when it does not exist.

    Args:
        cfn: a boto3 CloudFormation client.
        name: the stack's name or id.
    """
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in error.response["Error"].get("Message", ""):
            return None
        raise
    return dict(stacks[0]) if stacks else None


@dataclass
class StackEvents:
    """The events of one stack operation, gathered across polls."""

    stop_at: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def prime(self, cfn: Any, stack: str) -> None:
        """Mark every event so far as belonging to an earlier operation."""
        page = cfn.describe_stack_events(StackName=stack)["StackEvents"]
        self.stop_at = page[0]["EventId"] if page else None

    def collect(self, cfn: Any, stack: str) -> None:
        """Add the events that arrived since the last call, oldest first."""
        fresh: list[dict[str, Any]] = []
        paginator = cfn.get_paginator("describe_stack_events")
        for page in paginator.paginate(StackName=stack):
            done, batch = self._take(page["StackEvents"])
            fresh.extend(batch)
            if done:
                break
        if fresh:
            self.stop_at = fresh[0]["EventId"]
        self.events.extend(reversed(fresh))

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
        """Count the resources whose latest status is a finished one."""
        latest: dict[str, str] = {}
        for event in self.events:  # oldest first, so the last status wins
            if event.get("ResourceType") != _STACK_TYPE:
                latest[event["LogicalResourceId"]] = event.get("ResourceStatus", "")
        return sum(status in _DONE for status in latest.values())

    def first_failure(self) -> str:
        """Describe the first resource that failed, preferring a real resource."""
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


def failure_reason(cfn: Any, stack: str) -> str:
    """Return why the stack's latest operation failed, from its events."""
    events = StackEvents()
    events.collect(cfn, stack)
    return events.first_failure()


def wait_for_stack(
    lab: Lab,
    stack_id: str,
    *,
    events: StackEvents,
    total: int,
    progress: bool,
    timeout_minutes: float,
) -> tuple[str, dict[str, Any] | None]:
    """Poll the stack until no operation is in progress.

    Args:
        lab: the connected lab.
        stack_id: the stack to follow.
        events: the operation's events so far, gathered further here.
        total: how many resources the bar counts to.
        progress: show the progress bar.
        timeout_minutes: how long to wait before giving up.

    Returns:
        The stack's final status and description (None once deleted).

    Raises:
        WaitTimeoutError: the stack was still in progress at the timeout.
    """
    cfn = lab.client("cloudformation")
    deadline = _clock() + timeout_minutes * 60
    bar = tqdm(total=total, desc=lab.stack_name, unit="resource", disable=not progress)
    with bar:
        while True:
            description = describe_stack(cfn, stack_id)
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
                    # Set, not reset: a reset would restart the bar's clock
                    # and show a rate of thousands of resources a second.
                    final = max(events.done(), bar.n)
                    bar.total = final
                    bar.update(final - bar.n)
                if progress:
                    bar.write(f"{lab.stack_name}: {status}, {events.done()} resources")
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
