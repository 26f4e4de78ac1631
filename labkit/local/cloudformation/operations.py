"""The CloudFormation API of the local cloud, served in moto's place.

CreateStack and DeleteStack return at once and work on a background thread,
as in AWS; callers poll DescribeStacks or DescribeStackEvents. UpdateStack is
not supported by the local cloud: it answers "No updates are to be
performed." when nothing changed, and otherwise asks for the stack to be
deleted and created again.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from labkit.local.cloudformation import engine, parameters
from labkit.local.cloudformation.stacks import (
    Stack,
    add_stack,
    all_stacks,
    find_stack,
    now,
    stack_arn,
)
from labkit.local.registry import Call, ServiceError, operation
from labkit.template import TemplateError, load_template

logger = logging.getLogger(__name__)

_STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,127}")


def _invalid(message: str) -> ServiceError:
    return ServiceError("ValidationError", message)


def _template_body(params: dict[str, Any], region: str) -> str:
    if params.get("TemplateBody"):
        return str(params["TemplateBody"])
    if params.get("TemplateURL"):
        return parameters.read_template_url(str(params["TemplateURL"]), region)
    raise _invalid("Either Template URL or Template Body must be specified.")


def _parse(body: str) -> dict[str, Any]:
    try:
        return load_template(body)
    except TemplateError as error:
        raise _invalid(str(error)) from None


@operation("cloudformation", "CreateStack")
def create_stack(call: Call) -> dict[str, Any]:
    """Check the request, then create the stack's resources in the background."""
    params = call.params
    name = str(params["StackName"])
    if not _STACK_NAME.fullmatch(name):
        raise _invalid(
            f"1 validation error detected: Value '{name}' at 'stackName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "[a-zA-Z][-a-zA-Z0-9]*"
        )
    if "OnFailure" in params and "DisableRollback" in params:
        raise _invalid(
            "Either DisableRollback or OnFailure can be specified, not both."
        )
    body = _template_body(params, call.region)
    template = _parse(body)
    capabilities = list(params.get("Capabilities") or [])
    parameters.check_capabilities(template, capabilities)
    values, view = parameters.resolve_parameters(
        template, list(params.get("Parameters") or []), call.region
    )

    on_failure = str(params.get("OnFailure") or "ROLLBACK")
    if params.get("DisableRollback"):
        on_failure = "DO_NOTHING"
    stack = Stack(
        stack_id=stack_arn(call.region, call.account_id, name),
        name=name,
        account_id=call.account_id,
        region=call.region,
        template_body=body,
        template=template,
        parameter_values=values,
        parameter_view=view,
        capabilities=capabilities,
        tags=list(params.get("Tags") or []),
        on_failure=on_failure,
        creation_time=now(),
        timeout_in_minutes=params.get("TimeoutInMinutes"),
        notification_arns=list(params.get("NotificationARNs") or []),
    )
    evaluator = engine.new_evaluator(stack)
    try:
        engine.plan(template, evaluator)
    except TemplateError as error:
        raise _invalid(str(error)) from None
    add_stack(stack)
    stack.set_status("CREATE_IN_PROGRESS", "User Initiated")
    engine.start(stack, engine.create_stack_resources, evaluator)
    return {"StackId": stack.stack_id}


@operation("cloudformation", "DeleteStack")
def delete_stack(call: Call) -> dict[str, Any]:
    """Delete the stack's resources in the background; unknown names succeed."""
    name = str(call.params["StackName"])
    try:
        stack = find_stack(call.account_id, call.region, name)
    except ServiceError:
        return {}
    if stack.deleted or stack.status == "DELETE_IN_PROGRESS":
        return {}
    retain = list(call.params.get("RetainResources") or [])
    if retain and stack.status != "DELETE_FAILED":
        raise _invalid(
            "Invalid operation on stack: RetainResources can only be specified "
            "when the stack is in the DELETE_FAILED state"
        )
    engine.start(stack, engine.delete_stack, retain)
    return {}


@operation("cloudformation", "UpdateStack")
def update_stack(call: Call) -> dict[str, Any]:
    """Refuse updates: the local cloud only creates and deletes stacks.

    When the template and parameters are unchanged the answer is AWS's
    "No updates are to be performed."; any real change is not supported by
    the local cloud, and the error says to delete the stack and create it
    again.
    """
    params = call.params
    stack = find_stack(call.account_id, call.region, str(params["StackName"]))
    if stack.status.endswith("_IN_PROGRESS") or stack.status in (
        "CREATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "DELETE_FAILED",
    ):
        raise _invalid(
            f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
        )
    if params.get("UsePreviousTemplate"):
        body = stack.template_body
    else:
        body = _template_body(params, call.region)
    given = []
    for parameter in params.get("Parameters") or []:
        if parameter.get("UsePreviousValue"):
            previous = stack.parameter_view
            value = next(
                p["ParameterValue"]
                for p in previous
                if p["ParameterKey"] == parameter["ParameterKey"]
            )
            given.append(
                {"ParameterKey": parameter["ParameterKey"], "ParameterValue": value}
            )
        else:
            given.append(parameter)
    _, view = parameters.resolve_parameters(_parse(body), given, call.region)
    if body == stack.template_body and view == stack.parameter_view:
        raise _invalid("No updates are to be performed.")
    raise _invalid(
        "Stack updates are not supported by the local cloud: delete the stack "
        f"{stack.name!r} and create it again with the new template or parameters."
    )


def _describe(stack: Stack) -> dict[str, Any]:
    described: dict[str, Any] = {
        "StackId": stack.stack_id,
        "StackName": stack.name,
        "Parameters": stack.parameter_view,
        "CreationTime": stack.creation_time,
        "StackStatus": stack.status,
        "DisableRollback": stack.on_failure == "DO_NOTHING",
        "NotificationARNs": stack.notification_arns,
        "Capabilities": stack.capabilities,
        "Outputs": stack.outputs,
        "Tags": stack.tags,
        "EnableTerminationProtection": False,
        "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
    }
    if "Description" in stack.template:
        described["Description"] = str(stack.template["Description"])
    if stack.reason:
        described["StackStatusReason"] = stack.reason
    if stack.deletion_time is not None:
        described["DeletionTime"] = stack.deletion_time
    if stack.timeout_in_minutes is not None:
        described["TimeoutInMinutes"] = stack.timeout_in_minutes
    if not stack.outputs:
        del described["Outputs"]
    return described


@operation("cloudformation", "DescribeStacks")
def describe_stacks(call: Call) -> dict[str, Any]:
    """Describe one stack (by name or id) or every live stack."""
    name = call.params.get("StackName")
    if name:
        return {"Stacks": [_describe(find_stack(call.account_id, call.region, name))]}
    stacks = all_stacks(call.account_id, call.region)
    return {"Stacks": [_describe(s) for s in reversed(stacks) if not s.deleted]}


@operation("cloudformation", "DescribeStackEvents")
def describe_stack_events(call: Call) -> dict[str, Any]:
    """Return the stack's events, newest first."""
    stack = find_stack(call.account_id, call.region, str(call.params["StackName"]))
    return {"StackEvents": [dict(event) for event in reversed(stack.events)]}


def _resource_fields(stack: Stack, logical_id: str) -> dict[str, Any]:
    resource = stack.resources[logical_id]
    fields: dict[str, Any] = {
        "StackName": stack.name,
        "StackId": stack.stack_id,
        "LogicalResourceId": resource.logical_id,
        "PhysicalResourceId": resource.physical_id,
        "ResourceType": resource.resource_type,
        "ResourceStatus": resource.status,
        "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
    }
    if resource.reason:
        fields["ResourceStatusReason"] = resource.reason
    return fields


@operation("cloudformation", "DescribeStackResources")
def describe_stack_resources(call: Call) -> dict[str, Any]:
    """Return the stack's resources (found by stack name or physical id)."""
    params = call.params
    if params.get("StackName"):
        stack = find_stack(call.account_id, call.region, str(params["StackName"]))
    elif params.get("PhysicalResourceId"):
        stack = _stack_of_physical_id(call, str(params["PhysicalResourceId"]))
    else:
        raise _invalid("Either StackName or PhysicalResourceId must be specified.")
    wanted = params.get("LogicalResourceId")
    found = []
    for logical_id, resource in list(stack.resources.items()):
        if wanted and logical_id != wanted:
            continue
        fields = _resource_fields(stack, logical_id)
        fields["Timestamp"] = resource.timestamp
        found.append(fields)
    return {"StackResources": found}


def _stack_of_physical_id(call: Call, physical_id: str) -> Stack:
    for stack in all_stacks(call.account_id, call.region):
        resources = list(stack.resources.values())
        if not stack.deleted and any(r.physical_id == physical_id for r in resources):
            return stack
    raise _invalid(f"Stack for {physical_id} does not exist")


@operation("cloudformation", "DescribeStackResource")
def describe_stack_resource(call: Call) -> dict[str, Any]:
    """Return one resource of a stack, by logical id."""
    stack = find_stack(call.account_id, call.region, str(call.params["StackName"]))
    logical_id = str(call.params["LogicalResourceId"])
    if logical_id not in stack.resources:
        raise _invalid(f"Resource {logical_id} does not exist for stack {stack.name}")
    fields = _resource_fields(stack, logical_id)
    fields["LastUpdatedTimestamp"] = stack.resources[logical_id].timestamp
    fields["Metadata"] = "{}"
    return {"StackResourceDetail": fields}


@operation("cloudformation", "ListStackResources")
def list_stack_resources(call: Call) -> dict[str, Any]:
    """Return a summary of every resource of a stack."""
    stack = find_stack(call.account_id, call.region, str(call.params["StackName"]))
    summaries = []
    for logical_id, resource in list(stack.resources.items()):
        fields = _resource_fields(stack, logical_id)
        for key in ("StackName", "StackId"):
            del fields[key]
        fields["LastUpdatedTimestamp"] = resource.timestamp
        summaries.append(fields)
    return {"StackResourceSummaries": summaries}


@operation("cloudformation", "ListStacks")
def list_stacks(call: Call) -> dict[str, Any]:
    """Return every stack, deleted ones included, newest first."""
    statuses = set(call.params.get("StackStatusFilter") or [])
    summaries = []
    for stack in reversed(all_stacks(call.account_id, call.region)):
        if statuses and stack.status not in statuses:
            continue
        summary: dict[str, Any] = {
            "StackId": stack.stack_id,
            "StackName": stack.name,
            "CreationTime": stack.creation_time,
            "StackStatus": stack.status,
            "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
        }
        if "Description" in stack.template:
            summary["TemplateDescription"] = str(stack.template["Description"])
        if stack.reason:
            summary["StackStatusReason"] = stack.reason
        if stack.deletion_time is not None:
            summary["DeletionTime"] = stack.deletion_time
        summaries.append(summary)
    return {"StackSummaries": summaries}


@operation("cloudformation", "GetTemplate")
def get_template(call: Call) -> dict[str, Any]:
    """Return the stack's template exactly as it was given."""
    stack = find_stack(call.account_id, call.region, str(call.params["StackName"]))
    return {
        "TemplateBody": stack.template_body,
        "StagesAvailable": ["Original", "Processed"],
    }


@operation("cloudformation", "ValidateTemplate")
def validate_template(call: Call) -> dict[str, Any]:
    """Check a template's syntax; list its parameters and needed capabilities."""
    template = _parse(_template_body(call.params, call.region))
    declared = template.get("Parameters") or {}
    listed = []
    for name, spec in declared.items():
        entry: dict[str, Any] = {
            "ParameterKey": name,
            "NoEcho": str(spec.get("NoEcho", "false")).lower() == "true",
        }
        if "Default" in spec:
            entry["DefaultValue"] = str(spec["Default"])
        if "Description" in spec:
            entry["Description"] = str(spec["Description"])
        listed.append(entry)
    result: dict[str, Any] = {"Parameters": listed, "DeclaredTransforms": []}
    if "Description" in template:
        result["Description"] = str(template["Description"])
    needed, types = parameters.required_capabilities(template)
    if needed:
        result["Capabilities"] = needed
        result["CapabilitiesReason"] = (
            f"The following resource(s) require capabilities: [{', '.join(types)}]"
        )
    return result
