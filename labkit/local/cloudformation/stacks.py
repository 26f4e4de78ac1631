"""The stacks the local cloud knows, their resources and their events.

Stacks live as long as the local cloud process, deleted ones included (AWS
lists deleted stacks for 90 days). Every change goes through one lock, since
stacks are created and deleted on background threads.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labkit.local.registry import ServiceError

logger = logging.getLogger(__name__)

STACK_TYPE = "AWS::CloudFormation::Stack"
LOCK = threading.RLock()


def now() -> datetime:
    """Return the current lab time (the process runs on the lab clock)."""
    return datetime.now(UTC)


@dataclass
class StackResource:
    """One resource of a stack and what its create handler returned."""

    logical_id: str
    resource_type: str
    status: str
    timestamp: datetime
    reason: str | None = None
    physical_id: str = ""
    depends_on: set[str] = field(default_factory=set)
    properties: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stack:
    """One stack: its request, template, state, resources and events."""

    stack_id: str
    name: str
    account_id: str
    region: str
    template_body: str
    template: dict[str, Any]
    parameter_values: dict[str, Any]
    parameter_view: list[dict[str, str]]
    capabilities: list[str]
    tags: list[dict[str, str]]
    on_failure: str
    creation_time: datetime
    status: str = "CREATE_IN_PROGRESS"
    reason: str | None = "User Initiated"
    timeout_in_minutes: int | None = None
    notification_arns: list[str] = field(default_factory=list)
    deletion_time: datetime | None = None
    outputs: list[dict[str, str]] = field(default_factory=list)
    resources: dict[str, StackResource] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    worker: threading.Thread | None = None

    @property
    def deleted(self) -> bool:
        """Whether the stack has been deleted."""
        return self.status == "DELETE_COMPLETE"

    def set_status(self, status: str, reason: str | None = None) -> None:
        """Change the stack's status and record the stack event."""
        with LOCK:
            self.status, self.reason = status, reason
            if status == "DELETE_COMPLETE":
                self.deletion_time = now()
            self._record(self.name, self.stack_id, STACK_TYPE, status, reason)
        logger.info("stack %s: %s", self.name, status)

    def set_resource(
        self, resource: StackResource, status: str, reason: str | None = None
    ) -> None:
        """Change a resource's status and record its event."""
        with LOCK:
            resource.status, resource.reason = status, reason
            resource.timestamp = now()
            self.resources.setdefault(resource.logical_id, resource)
            self._record(
                resource.logical_id,
                resource.physical_id,
                resource.resource_type,
                status,
                reason,
            )
        logger.info(
            "stack %s: %s %s (%s) %s",
            self.name,
            resource.resource_type,
            resource.logical_id,
            resource.physical_id,
            status,
        )

    def _record(
        self,
        logical_id: str,
        physical_id: str,
        resource_type: str,
        status: str,
        reason: str | None,
    ) -> None:
        event: dict[str, Any] = {
            "StackId": self.stack_id,
            "EventId": str(uuid.uuid4()),
            "StackName": self.name,
            "LogicalResourceId": logical_id,
            "PhysicalResourceId": physical_id,
            "ResourceType": resource_type,
            "Timestamp": now(),
            "ResourceStatus": status,
        }
        if reason:
            event["ResourceStatusReason"] = reason
        self.events.append(event)


_STACKS: list[Stack] = []


def stack_arn(region: str, account_id: str, name: str) -> str:
    """Return a new stack id in AWS's form."""
    return f"arn:aws:cloudformation:{region}:{account_id}:stack/{name}/{uuid.uuid4()}"


def add_stack(stack: Stack) -> None:
    """Keep a new stack, refusing a name a live stack already has."""
    with LOCK:
        for known in _STACKS:
            same_place = (known.account_id, known.region) == (
                stack.account_id,
                stack.region,
            )
            if same_place and known.name == stack.name and not known.deleted:
                raise ServiceError(
                    "AlreadyExistsException", f"Stack [{stack.name}] already exists"
                )
        _STACKS.append(stack)


def find_stack(
    account_id: str, region: str, name_or_id: str, *, include_deleted: bool = True
) -> Stack:
    """Return the stack named ``name_or_id`` (a name or a stack id).

    A deleted stack is found only by its id, as in AWS.

    Raises:
        ServiceError: ValidationError when no such stack exists.
    """
    with LOCK:
        for stack in reversed(_STACKS):
            if (stack.account_id, stack.region) != (account_id, region):
                continue
            if stack.stack_id == name_or_id and (include_deleted or not stack.deleted):
                return stack
            if stack.name == name_or_id and not stack.deleted:
                return stack
    raise ServiceError("ValidationError", f"Stack with id {name_or_id} does not exist")


def all_stacks(account_id: str, region: str) -> list[Stack]:
    """Return every stack of the account and region, oldest first."""
    with LOCK:
        return [s for s in _STACKS if (s.account_id, s.region) == (account_id, region)]


def wait_for_stacks(timeout: float | None = None) -> bool:
    """Wait until no stack is being created or deleted.

    Args:
        timeout: seconds to wait at most; None waits as long as needed.

    Returns:
        True when every stack operation has finished.
    """
    with LOCK:
        workers = [s.worker for s in _STACKS if s.worker is not None]
    for worker in workers:
        worker.join(timeout)
    return not any(worker.is_alive() for worker in workers)


def reset_stacks() -> None:
    """Forget every stack (used when the local cloud is reset)."""
    wait_for_stacks(timeout=60)
    with LOCK:
        _STACKS.clear()
