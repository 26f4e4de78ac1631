"""Messaging and compute types: SNS, SQS, EventBridge rules and Lambda."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from typing import Any

from botocore.exceptions import ClientError

from labkit.local.cloudformation.resources import (
    Created,
    Provisioned,
    ResourceContext,
    creates,
    deletes,
    is_gone,
    policy_text,
)

logger = logging.getLogger(__name__)


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


@creates("AWS::SNS::Topic")
def create_topic(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    fifo = str(props.get("FifoTopic", "false")).lower() == "true"
    default = ctx.physical_name(251) + (".fifo" if fifo else "")
    attributes = {
        key: _text(props[key])
        for key in (
            "DisplayName",
            "KmsMasterKeyId",
            "FifoTopic",
            "ContentBasedDeduplication",
        )
        if key in props
    }
    params: dict[str, Any] = {
        "Name": props.get("TopicName") or default,
        "Attributes": attributes,
    }
    tags = ctx.tags(props.get("Tags"))
    if tags:
        params["Tags"] = tags
    arn = ctx.call("sns", "CreateTopic", **params)["TopicArn"]
    for subscription in props.get("Subscription", []):
        ctx.call(
            "sns",
            "Subscribe",
            TopicArn=arn,
            Protocol=subscription["Protocol"],
            Endpoint=subscription["Endpoint"],
        )
    return Created(arn, {"TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]})


@deletes("AWS::SNS::Topic")
def delete_topic(ctx: ResourceContext, res: Provisioned) -> None:
    subscriptions: list[dict[str, Any]] = []
    try:
        listed = ctx.call("sns", "ListSubscriptionsByTopic", TopicArn=res.physical_id)
        subscriptions = listed["Subscriptions"]
    except ClientError as error:
        if not is_gone(error):
            raise
    # Deleting a topic in AWS also removes its subscriptions.
    for subscription in subscriptions:
        if subscription["SubscriptionArn"].startswith("arn:"):
            ctx.delete(
                "sns",
                "Unsubscribe",
                SubscriptionArn=subscription["SubscriptionArn"],
            )
    ctx.delete("sns", "DeleteTopic", TopicArn=res.physical_id)


@creates("AWS::SNS::Subscription")
def create_subscription(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    names = ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")
    attributes = {key: _text(props[key]) for key in names if key in props}
    arn = ctx.call(
        "sns",
        "Subscribe",
        TopicArn=props["TopicArn"],
        Protocol=props["Protocol"],
        Endpoint=props["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return Created(arn, {"Arn": arn})


@deletes("AWS::SNS::Subscription")
def delete_subscription(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("sns", "Unsubscribe", SubscriptionArn=res.physical_id)


def _default_topic_policy(ctx: ResourceContext, topic_arn: str) -> str:
    statement = {
        "Sid": "__default_statement_ID",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": [
            "SNS:GetTopicAttributes",
            "SNS:SetTopicAttributes",
            "SNS:AddPermission",
            "SNS:RemovePermission",
            "SNS:DeleteTopic",
            "SNS:Subscribe",
            "SNS:ListSubscriptionsByTopic",
            "SNS:Publish",
        ],
        "Resource": topic_arn,
        "Condition": {"StringEquals": {"AWS:SourceOwner": ctx.account_id}},
    }
    return json.dumps({"Version": "2008-10-17", "Statement": [statement]})


@creates("AWS::SNS::TopicPolicy")
def create_topic_policy(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    document = policy_text(props["PolicyDocument"])
    for topic in props["Topics"]:
        ctx.call(
            "sns",
            "SetTopicAttributes",
            TopicArn=topic,
            AttributeName="Policy",
            AttributeValue=document,
        )
    return Created(ctx.physical_name(64), {})


@deletes("AWS::SNS::TopicPolicy")
def delete_topic_policy(ctx: ResourceContext, res: Provisioned) -> None:
    for topic in res.properties["Topics"]:
        ctx.delete(
            "sns",
            "SetTopicAttributes",
            TopicArn=topic,
            AttributeName="Policy",
            AttributeValue=_default_topic_policy(ctx, topic),
        )


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)


@creates("AWS::SQS::Queue")
def create_queue(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    fifo = str(props.get("FifoQueue", "false")).lower() == "true"
    default = ctx.physical_name(75) + (".fifo" if fifo else "")
    attributes = {key: _text(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    params: dict[str, Any] = {
        "QueueName": props.get("QueueName") or default,
        "Attributes": attributes,
    }
    tags = {tag["Key"]: tag["Value"] for tag in ctx.tags(props.get("Tags"))}
    if tags:
        params["tags"] = tags
    url = ctx.call("sqs", "CreateQueue", **params)["QueueUrl"]
    arn = ctx.call(
        "sqs", "GetQueueAttributes", QueueUrl=url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    attributes_out = {"Arn": arn, "QueueName": params["QueueName"], "QueueUrl": url}
    return Created(url, attributes_out)


@deletes("AWS::SQS::Queue")
def delete_queue(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("sqs", "DeleteQueue", QueueUrl=res.physical_id)


@creates("AWS::SQS::QueuePolicy")
def create_queue_policy(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    document = policy_text(props["PolicyDocument"])
    for url in props["Queues"]:
        ctx.call(
            "sqs", "SetQueueAttributes", QueueUrl=url, Attributes={"Policy": document}
        )
    return Created(ctx.physical_name(64), {"Id": ""})


@deletes("AWS::SQS::QueuePolicy")
def delete_queue_policy(ctx: ResourceContext, res: Provisioned) -> None:
    for url in res.properties["Queues"]:
        ctx.delete("sqs", "SetQueueAttributes", QueueUrl=url, Attributes={"Policy": ""})


_TARGET_KEYS = ("Id", "Arn", "Input", "InputPath", "InputTransformer", "RoleArn")


@creates("AWS::Events::Rule")
def create_rule(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("Name") or ctx.physical_name(64)
    params: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
    if "EventPattern" in props:
        params["EventPattern"] = _text(props["EventPattern"])
    copied = ("ScheduleExpression", "Description", "EventBusName", "RoleArn")
    params.update({key: props[key] for key in copied if key in props})
    arn = ctx.call("events", "PutRule", **params)["RuleArn"]

    targets = [
        {key: target[key] for key in _TARGET_KEYS if key in target}
        for target in props.get("Targets", [])
    ]
    bus = {"EventBusName": props["EventBusName"]} if "EventBusName" in props else {}
    if targets:
        response = ctx.call("events", "PutTargets", Rule=name, Targets=targets, **bus)
        if response.get("FailedEntryCount"):
            raise RuntimeError(response["FailedEntries"][0]["ErrorMessage"])
    bus_name = props.get("EventBusName", "default")
    physical_id = name if bus_name == "default" else f"{bus_name}|{name}"
    return Created(physical_id, {"Arn": arn}, {"Name": name, "Bus": bus})


@deletes("AWS::Events::Rule")
def delete_rule(ctx: ResourceContext, res: Provisioned) -> None:
    name, bus = res.notes["Name"], res.notes["Bus"]
    try:
        listed = ctx.call("events", "ListTargetsByRule", Rule=name, **bus)["Targets"]
    except ClientError as error:
        if is_gone(error):
            return
        raise
    if listed:
        ids = [target["Id"] for target in listed]
        ctx.call("events", "RemoveTargets", Rule=name, Ids=ids, **bus)
    ctx.delete("events", "DeleteRule", Name=name, **bus)


def _inline_zip(source: str, runtime: str) -> bytes:
    # AWS stores ZipFile code as index.py (Python) or index.js (Node.js).
    name = "index.js" if runtime.startswith("nodejs") else "index.py"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, source)
    return buffer.getvalue()


@creates("AWS::Lambda::Function")
def create_function(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    code = dict(props["Code"])
    if "ZipFile" in code:
        code = {"ZipFile": _inline_zip(code["ZipFile"], str(props.get("Runtime", "")))}
    params: dict[str, Any] = {
        "FunctionName": props.get("FunctionName") or ctx.physical_name(64),
        "Role": props["Role"],
        "Code": code,
    }
    copied = (
        "Handler",
        "Runtime",
        "Timeout",
        "MemorySize",
        "Description",
        "Environment",
        "Layers",
        "Architectures",
        "PackageType",
        "TracingConfig",
    )
    params.update({key: props[key] for key in copied if key in props})
    tags = {tag["Key"]: tag["Value"] for tag in ctx.tags(props.get("Tags"))}
    if tags:
        params["Tags"] = tags
    function = ctx.call("lambda", "CreateFunction", **params)
    return Created(params["FunctionName"], {"Arn": function["FunctionArn"]})


@deletes("AWS::Lambda::Function")
def delete_function(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("lambda", "DeleteFunction", FunctionName=res.physical_id)


@creates("AWS::Lambda::Permission")
def create_permission(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    statement_id = ctx.physical_name(100)
    copied = ("SourceArn", "SourceAccount", "EventSourceToken", "PrincipalOrgID")
    params = {key: props[key] for key in copied if key in props}
    ctx.call(
        "lambda",
        "AddPermission",
        FunctionName=props["FunctionName"],
        StatementId=statement_id,
        Action=props["Action"],
        Principal=props["Principal"],
        **params,
    )
    return Created(statement_id, {}, {"FunctionName": props["FunctionName"]})


@deletes("AWS::Lambda::Permission")
def delete_permission(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete(
        "lambda",
        "RemovePermission",
        FunctionName=res.notes["FunctionName"],
        StatementId=res.physical_id,
    )
