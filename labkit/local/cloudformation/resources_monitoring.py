"""Monitoring types: CloudTrail, AWS Config and CloudWatch alarms."""

from __future__ import annotations

import json
import logging
from typing import Any

from labkit.local.cloudformation.resources import (
    Created,
    Provisioned,
    ResourceContext,
    creates,
    deletes,
    pick,
)

logger = logging.getLogger(__name__)


@creates("AWS::CloudTrail::Trail")
def create_trail(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("TrailName") or ctx.physical_name(128)
    params: dict[str, Any] = {
        "Name": name,
        **pick(
            props,
            "S3BucketName",
            "S3KeyPrefix",
            "SnsTopicName",
            "IncludeGlobalServiceEvents",
            "IsMultiRegionTrail",
            "EnableLogFileValidation",
            "CloudWatchLogsLogGroupArn",
            "CloudWatchLogsRoleArn",
            "KMSKeyId",
            "IsOrganizationTrail",
        ),
    }
    tags = ctx.tags(props.get("Tags"))
    if tags:
        params["TagsList"] = tags
    trail = ctx.call("cloudtrail", "CreateTrail", **params)
    if "EventSelectors" in props:
        ctx.call(
            "cloudtrail",
            "PutEventSelectors",
            TrailName=name,
            EventSelectors=props["EventSelectors"],
        )
    if str(props["IsLogging"]).lower() == "true":
        ctx.call("cloudtrail", "StartLogging", Name=name)
    attributes = {"Arn": trail["TrailARN"], "SnsTopicArn": trail.get("SnsTopicARN", "")}
    return Created(name, attributes)


@deletes("AWS::CloudTrail::Trail")
def delete_trail(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("cloudtrail", "DeleteTrail", Name=res.physical_id)


def _start_recorder_if_ready(ctx: ResourceContext) -> None:
    # CloudFormation starts the recorder once both it and a channel exist.
    recorders = ctx.call("config", "DescribeConfigurationRecorders")[
        "ConfigurationRecorders"
    ]
    channels = ctx.call("config", "DescribeDeliveryChannels")["DeliveryChannels"]
    if recorders and channels:
        ctx.call(
            "config",
            "StartConfigurationRecorder",
            ConfigurationRecorderName=recorders[0]["name"],
        )


@creates("AWS::Config::ConfigurationRecorder")
def create_recorder(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("Name") or "default"
    recorder: dict[str, Any] = {"name": name, "roleARN": props["RoleARN"]}
    group = props.get("RecordingGroup")
    if group:
        recorder["recordingGroup"] = {
            "allSupported": group.get("AllSupported", False),
            "includeGlobalResourceTypes": group.get(
                "IncludeGlobalResourceTypes", False
            ),
            "resourceTypes": group.get("ResourceTypes", []),
        }
    ctx.call("config", "PutConfigurationRecorder", ConfigurationRecorder=recorder)
    _start_recorder_if_ready(ctx)
    return Created(name, {})


@deletes("AWS::Config::ConfigurationRecorder")
def delete_recorder(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete(
        "config",
        "StopConfigurationRecorder",
        ConfigurationRecorderName=res.physical_id,
    )
    ctx.delete(
        "config",
        "DeleteConfigurationRecorder",
        ConfigurationRecorderName=res.physical_id,
    )


@creates("AWS::Config::DeliveryChannel")
def create_delivery_channel(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("Name") or "default"
    channel: dict[str, Any] = {
        "name": name,
        "s3BucketName": props["S3BucketName"],
    }
    optional = {
        "S3KeyPrefix": "s3KeyPrefix",
        "SnsTopicARN": "snsTopicARN",
        "S3KmsKeyArn": "s3KmsKeyArn",
    }
    channel.update({out: props[key] for key, out in optional.items() if key in props})
    snapshot = props.get("ConfigSnapshotDeliveryProperties")
    if snapshot:
        channel["configSnapshotDeliveryProperties"] = {
            "deliveryFrequency": snapshot["DeliveryFrequency"]
        }
    ctx.call("config", "PutDeliveryChannel", DeliveryChannel=channel)
    _start_recorder_if_ready(ctx)
    return Created(name, {})


@deletes("AWS::Config::DeliveryChannel")
def delete_delivery_channel(ctx: ResourceContext, res: Provisioned) -> None:
    # Config refuses to delete the channel while a recorder is running.
    recorders = ctx.call("config", "DescribeConfigurationRecorders")[
        "ConfigurationRecorders"
    ]
    for recorder in recorders:
        ctx.delete(
            "config",
            "StopConfigurationRecorder",
            ConfigurationRecorderName=recorder["name"],
        )
    ctx.delete("config", "DeleteDeliveryChannel", DeliveryChannelName=res.physical_id)


@creates("AWS::Config::ConfigRule")
def create_config_rule(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("ConfigRuleName") or ctx.physical_name(128)
    rule: dict[str, Any] = {
        "ConfigRuleName": name,
        "Source": props["Source"],
        **pick(props, "Description", "Scope", "MaximumExecutionFrequency"),
    }
    if "InputParameters" in props:
        parameters = props["InputParameters"]
        rule["InputParameters"] = (
            parameters if isinstance(parameters, str) else json.dumps(parameters)
        )
    ctx.call("config", "PutConfigRule", ConfigRule=rule)
    found = ctx.call("config", "DescribeConfigRules", ConfigRuleNames=[name])[
        "ConfigRules"
    ][0]
    attributes = {
        "Arn": found.get("ConfigRuleArn", ""),
        "ConfigRuleId": found.get("ConfigRuleId", ""),
        "Compliance.Type": "",
    }
    return Created(name, attributes)


@deletes("AWS::Config::ConfigRule")
def delete_config_rule(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("config", "DeleteConfigRule", ConfigRuleName=res.physical_id)


_ALARM_KEYS = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
)


@creates("AWS::CloudWatch::Alarm")
def create_alarm(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("AlarmName") or ctx.physical_name(255)
    ctx.call(
        "cloudwatch", "PutMetricAlarm", AlarmName=name, **pick(props, *_ALARM_KEYS)
    )
    arn = f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:alarm:{name}"
    return Created(name, {"Arn": arn})


@deletes("AWS::CloudWatch::Alarm")
def delete_alarm(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("cloudwatch", "DeleteAlarms", AlarmNames=[res.physical_id])
