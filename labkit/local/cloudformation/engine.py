"""Creating and deleting a stack's resources, in dependency order.

A resource is created after every resource it refers to (``Ref``,
``Fn::GetAtt``, ``Fn::Sub``) or names in ``DependsOn``, and deleted before
them. Resources are created one at a time, in the template's order where
dependencies allow, so stack events come out in a repeatable order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labkit.local.cloudformation import parameters
from labkit.local.cloudformation.resources import (
    RESOURCE_TYPES,
    Provisioned,
    ResourceContext,
)
from labkit.local.cloudformation.stacks import Stack, StackResource, now
from labkit.local.registry import ServiceError
from labkit.template import Evaluator, TemplateError, pseudo_parameters, references

logger = logging.getLogger(__name__)

# A handler failing for any of these reasons fails its resource, not the engine.
_HANDLER_ERRORS = (
    ClientError,
    BotoCoreError,
    TemplateError,
    NotImplementedError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
)


def plan(template: dict[str, Any], evaluator: Evaluator) -> dict[str, set[str]]:
    """Return the resources to create, each with the resources it needs.

    The dict's order is a creation order: dependencies first, otherwise the
    template's order.

    Raises:
        ServiceError: a reference names nothing, or resources form a cycle.
    """
    resources: dict[str, Any] = template["Resources"]
    known = set(resources) | set(evaluator.parameters) | set(evaluator.pseudo)
    known.add("AWS::NoValue")
    needs: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        depends_on = resource.get("DependsOn") or []
        depends_on = [depends_on] if isinstance(depends_on, str) else list(depends_on)
        named = references(resource.get("Properties") or {}) | set(depends_on)
        unknown = sorted(named - known)
        if unknown:
            raise ServiceError(
                "ValidationError",
                "Template format error: Unresolved resource dependencies "
                f"[{', '.join(unknown)}] in the Resources block of the template",
            )
        condition = resource.get("Condition")
        if condition is None or evaluator.condition(str(condition)):
            needs[logical_id] = named & set(resources)

    for logical_id in needs:
        needs[logical_id] &= set(needs)
    return _topological(needs)


def _topological(needs: dict[str, set[str]]) -> dict[str, set[str]]:
    ordered: dict[str, set[str]] = {}
    remaining = dict(needs)
    while remaining:
        ready = [name for name, deps in remaining.items() if deps <= set(ordered)]
        if not ready:
            cycle = ", ".join(sorted(remaining))
            raise ServiceError(
                "ValidationError", f"Circular dependency between resources: [{cycle}]"
            )
        for name in ready:
            ordered[name] = remaining.pop(name)
    return ordered


def start(stack: Stack, target: Any, *args: Any) -> None:
    """Run ``target(stack, *args)`` on the stack's background thread."""
    previous = stack.worker

    def run() -> None:
        if previous is not None:
            previous.join()
        target(stack, *args)

    worker = threading.Thread(target=run, name=f"cfn-{stack.name}", daemon=True)
    stack.worker = worker
    worker.start()


def create_stack_resources(stack: Stack, evaluator: Evaluator) -> None:
    """Create the stack's resources, then its outputs; roll back on failure."""
    order = plan(stack.template, evaluator)
    failed: str | None = None
    for logical_id, needs in order.items():
        if not _create_one(stack, evaluator, logical_id, needs):
            failed = logical_id
            break

    if failed is None:
        try:
            stack.outputs = _outputs(stack.template, evaluator)
        except TemplateError as error:
            failed = "Outputs"
            stack.reason = str(error)
        else:
            stack.set_status("CREATE_COMPLETE")
            return

    reason = f"The following resource(s) failed to create: [{failed}]. "
    if stack.on_failure == "DO_NOTHING":
        stack.set_status("CREATE_FAILED", reason)
    elif stack.on_failure == "DELETE":
        stack.set_status("DELETE_IN_PROGRESS", reason + "Delete requested by user.")
        ok = delete_stack_resources(stack)
        stack.set_status("DELETE_COMPLETE" if ok else "DELETE_FAILED")
    else:
        stack.set_status("ROLLBACK_IN_PROGRESS", reason + "Rollback requested by user.")
        ok = delete_stack_resources(stack)
        stack.set_status("ROLLBACK_COMPLETE" if ok else "ROLLBACK_FAILED")


def _context(stack: Stack, logical_id: str) -> ResourceContext:
    return ResourceContext(
        stack_name=stack.name,
        stack_id=stack.stack_id,
        logical_id=logical_id,
        account_id=stack.account_id,
        region=stack.region,
        stack_tags=stack.tags,
    )


def _create_one(
    stack: Stack, evaluator: Evaluator, logical_id: str, needs: set[str]
) -> bool:
    declared = stack.template["Resources"][logical_id]
    resource = StackResource(
        logical_id, str(declared["Type"]), "", now(), depends_on=set(needs)
    )
    stack.set_resource(resource, "CREATE_IN_PROGRESS")
    handler = RESOURCE_TYPES.get(resource.resource_type)
    if handler is None:
        reason = (
            f"Resource type {resource.resource_type} is not supported by the local "
            f"cloud; supported types: {', '.join(sorted(RESOURCE_TYPES))}"
        )
        stack.set_resource(resource, "CREATE_FAILED", reason)
        return False

    try:
        properties = evaluator.resolve(declared.get("Properties") or {})
        resource.properties = properties
        created = handler.create(_context(stack, logical_id), properties)
    except _HANDLER_ERRORS as error:
        stack.set_resource(resource, "CREATE_FAILED", failure_reason(error))
        return False

    resource.physical_id = created.physical_id
    resource.attributes, resource.notes = created.attributes, created.notes
    evaluator.physical_ids[logical_id] = created.physical_id
    evaluator.attributes[logical_id] = created.attributes
    stack.set_resource(resource, "CREATE_COMPLETE")
    return True


def failure_reason(error: BaseException) -> str:
    """Return a resource failure reason worded like CloudFormation's."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        service = error.operation_name
        return (
            f'Resource handler returned message: "{details.get("Message", "")}" '
            f"(Operation: {service}, Status Code: {status}, "
            f"HandlerErrorCode: {details.get('Code', 'GeneralServiceException')})"
        )
    if isinstance(error, KeyError):
        return f"Properties validation failed: required key [{error.args[0]}] not found"
    return str(error) or type(error).__name__


def _outputs(template: dict[str, Any], evaluator: Evaluator) -> list[dict[str, str]]:
    outputs: list[dict[str, str]] = []
    for key, output in (template.get("Outputs") or {}).items():
        condition = output.get("Condition")
        if condition is not None and not evaluator.condition(str(condition)):
            continue
        value = evaluator.resolve(output["Value"])
        entry = {"OutputKey": key, "OutputValue": _output_text(value)}
        if "Description" in output:
            entry["Description"] = str(output["Description"])
        export = (output.get("Export") or {}).get("Name")
        if export is not None:
            entry["ExportName"] = str(evaluator.resolve(export))
        outputs.append(entry)
    return outputs


def _output_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def delete_stack_resources(stack: Stack, retain: Iterable[str] = ()) -> bool:
    """Delete the stack's resources, dependents first.

    A resource that fails to delete keeps the resources it depends on, as in
    AWS; independent resources are still deleted.

    Args:
        stack: the stack whose resources to delete.
        retain: logical ids to keep (DeleteStack's RetainResources).

    Returns:
        True when every resource is gone (or retained).
    """
    retained = set(retain)
    blocked: set[str] = set()
    ok = True
    for resource in reversed(list(stack.resources.values())):
        if resource.status in ("DELETE_COMPLETE", "DELETE_SKIPPED"):
            continue
        if resource.logical_id in blocked:
            ok = False
            continue
        declared = stack.template["Resources"].get(resource.logical_id, {})
        keep = (
            declared.get("DeletionPolicy") == "Retain"
            or resource.logical_id in retained
        )
        if keep and resource.physical_id:
            stack.set_resource(resource, "DELETE_SKIPPED")
            continue
        if not _delete_one(stack, resource):
            ok = False
            blocked |= _all_needs(stack, resource.logical_id)
    return ok


def _all_needs(stack: Stack, logical_id: str) -> set[str]:
    found: set[str] = set()
    pending = [logical_id]
    while pending:
        current = stack.resources.get(pending.pop())
        if current is None:
            continue
        for name in current.depends_on - found:
            found.add(name)
            pending.append(name)
    return found


def _delete_one(stack: Stack, resource: StackResource) -> bool:
    stack.set_resource(resource, "DELETE_IN_PROGRESS")
    handler = RESOURCE_TYPES.get(resource.resource_type)
    # A resource that never got a physical id was never created.
    if handler is not None and resource.physical_id:
        provisioned = Provisioned(
            resource.physical_id,
            resource.properties,
            resource.attributes,
            resource.notes,
        )
        try:
            handler.delete(_context(stack, resource.logical_id), provisioned)
        except _HANDLER_ERRORS as error:
            stack.set_resource(resource, "DELETE_FAILED", failure_reason(error))
            return False
    stack.set_resource(resource, "DELETE_COMPLETE")
    return True


def delete_stack(stack: Stack, retain: list[str]) -> None:
    """Delete a whole stack (run on its background thread)."""
    stack.set_status("DELETE_IN_PROGRESS", "User Initiated")
    if delete_stack_resources(stack, retain):
        stack.set_status("DELETE_COMPLETE")
        return
    failed = [
        r.logical_id for r in stack.resources.values() if r.status == "DELETE_FAILED"
    ]
    reason = f"The following resource(s) failed to delete: [{', '.join(failed)}]. "
    stack.set_status("DELETE_FAILED", reason)


def new_evaluator(stack: Stack) -> Evaluator:
    """Return the evaluator of a stack's template and parameters."""
    pseudo = pseudo_parameters(
        stack.account_id,
        stack.region,
        stack.name,
        stack_id=stack.stack_id,
        notification_arns=stack.notification_arns,
    )
    return Evaluator(
        template=stack.template,
        parameters=stack.parameter_values,
        pseudo=pseudo,
        get_azs=parameters.availability_zones,
    )
