"""The registry of resource types the engine can create and delete.

Each supported type has one create handler and one delete handler, kept in a
``resources_<service>.py`` module. A create handler receives the resolved
properties and returns the resource's physical id (what ``Ref`` gives) and
its ``Fn::GetAtt`` attributes; a delete handler receives what the create
returned. Both call the service APIs through the local cloud, as AWS
CloudFormation calls the services.
"""

from __future__ import annotations

import json
import logging
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.model import Shape

from labkit.local import internal

logger = logging.getLogger(__name__)


@dataclass
class ResourceContext:
    """What a handler knows about the resource it is working on.

    Attributes:
        stack_name: the stack's name.
        stack_id: the stack's ARN.
        logical_id: the resource's name in the template.
        account_id: the stack's account.
        region: the stack's region.
        stack_tags: the stack's tags, as ``[{"Key": k, "Value": v}]``.
    """

    stack_name: str
    stack_id: str
    logical_id: str
    account_id: str
    region: str
    stack_tags: list[dict[str, str]] = field(default_factory=list)

    def client(self, service: str) -> BaseClient:
        """Return a client for ``service`` in the stack's region."""
        return internal.client(service, self.region)

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` with its parameters converted to the API's types.

        Template values often arrive as text (``"5"``, ``"true"``) where the
        API wants numbers or booleans; CloudFormation converts them, and so
        does this, guided by the operation's input shape.
        """
        client = self.client(service)
        model = client.meta.service_model.operation_model(operation)
        coerced = _coerce(model.input_shape, params) if model.input_shape else params
        method = getattr(client, xform_name(operation))
        response: dict[str, Any] = method(**coerced)
        response.pop("ResponseMetadata", None)
        return response

    def delete(self, service: str, operation: str, **params: Any) -> None:
        """Call a delete ``operation``; a resource already gone is success."""
        try:
            self.call(service, operation, **params)
        except ClientError as error:
            if not is_gone(error):
                raise

    def physical_name(self, max_length: int = 128, lowercase: bool = False) -> str:
        """Return a generated name as AWS makes them: stack-logical-RANDOM."""
        alphabet = string.ascii_uppercase + string.digits
        suffix = "".join(random.choices(alphabet, k=12))
        stem_length = max_length - len(suffix) - 2
        stack_part = self.stack_name[: max(stem_length // 2, 1)]
        logical_part = self.logical_id[: max(stem_length - len(stack_part), 1)]
        name = f"{stack_part}-{logical_part}-{suffix}"
        return name.lower() if lowercase else name

    def tags(
        self, extra: list[dict[str, Any]] | None = None, *, system: bool = False
    ) -> list[dict[str, str]]:
        """Return the stack's tags followed by the resource's own ``Tags``.

        With ``system``, CloudFormation's own ``aws:cloudformation:*`` tags
        come first: it marks what it creates with them, which is how a stack's
        instances are found by tag. Only services that take these reserved
        tags through their API (EC2) get them; S3 or IAM refuse them.
        """
        merged: dict[str, str] = {}
        if system:
            merged = {
                "aws:cloudformation:stack-name": self.stack_name,
                "aws:cloudformation:stack-id": self.stack_id,
                "aws:cloudformation:logical-id": self.logical_id,
            }
        merged.update({tag["Key"]: str(tag["Value"]) for tag in self.stack_tags})
        merged.update({tag["Key"]: str(tag["Value"]) for tag in extra or []})
        return [{"Key": key, "Value": value} for key, value in merged.items()]

    def tag_specifications(self, kind: str, props: dict[str, Any]) -> list[Any]:
        """Return EC2's ``TagSpecifications`` for a resource of ``kind``."""
        tags = self.tags(props.get("Tags"), system=True)
        return [{"ResourceType": kind, "Tags": tags}] if tags else []


@dataclass
class Created:
    """What a create handler made: physical id, attributes, delete notes."""

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Provisioned:
    """A created resource, as its delete handler receives it."""

    physical_id: str
    properties: dict[str, Any]
    attributes: dict[str, Any]
    notes: dict[str, Any]


CreateHandler = Callable[[ResourceContext, dict[str, Any]], Created]
DeleteHandler = Callable[[ResourceContext, Provisioned], None]


@dataclass(frozen=True)
class ResourceType:
    """One supported resource type's handlers."""

    name: str
    create: CreateHandler
    delete: DeleteHandler


RESOURCE_TYPES: dict[str, ResourceType] = {}
_PENDING_CREATE: dict[str, CreateHandler] = {}


def creates(type_name: str) -> Callable[[CreateHandler], CreateHandler]:
    """Register the create handler of ``type_name`` (before its delete)."""

    def register(handler: CreateHandler) -> CreateHandler:
        _PENDING_CREATE[type_name] = handler
        return handler

    return register


def deletes(type_name: str) -> Callable[[DeleteHandler], DeleteHandler]:
    """Register the delete handler of ``type_name``, completing the type."""

    def register(handler: DeleteHandler) -> DeleteHandler:
        create = _PENDING_CREATE.pop(type_name)
        RESOURCE_TYPES[type_name] = ResourceType(type_name, create, handler)
        return handler

    return register


def is_gone(error: ClientError) -> bool:
    """Return whether ``error`` says the resource no longer exists.

    CloudFormation treats deleting what is already gone as success.
    """
    code = str(error.response.get("Error", {}).get("Code", ""))
    return any(mark in code for mark in ("NotFound", "NoSuch", "NonExistent"))


def pick(props: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Return the properties named by ``keys`` that the template sets."""
    return {key: props[key] for key in keys if key in props}


def policy_text(document: Any) -> str:
    """Return a policy document as JSON text, as the APIs want it."""
    return document if isinstance(document, str) else json.dumps(document)


def tag_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    """Return ``[{"Key": k, "Value": v}]`` as ``{k: v}``."""
    return {tag["Key"]: tag["Value"] for tag in tags}


def _coerce(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {
            key: _coerce(members[key], item) if key in members else item
            for key, item in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map" and isinstance(value, dict):
        return {key: _coerce(shape.value, item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind in ("integer", "long") and isinstance(value, str):
        return int(value)
    if kind in ("double", "float") and isinstance(value, str):
        return float(value)
    if kind == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    if kind == "string" and isinstance(value, bool):
        return str(value).lower()
    if kind == "string" and isinstance(value, int | float):
        return str(value)
    return value
