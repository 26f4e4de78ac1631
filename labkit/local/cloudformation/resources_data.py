"""Storage and monitoring types: SSM, DynamoDB, Logs, S3, CloudTrail, Config,
CloudWatch.

A bucket is deleted only when empty: a bucket holding objects fails to delete
with S3's own BucketNotEmpty message, as in AWS.
"""

from __future__ import annotations

import json
import logging
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
    tag_dict,
)

logger = logging.getLogger(__name__)


def _delete(ctx: ResourceContext, service: str, operation: str, **params: Any) -> None:
    try:
        ctx.call(service, operation, **params)
    except ClientError as error:
        if not is_gone(error):
            raise


def _copy(props: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: props[key] for key in keys if key in props}


@creates("AWS::SSM::Parameter")
def create_parameter(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("Name") or f"CFN-{ctx.logical_id}-{ctx.physical_name(20)[-12:]}"
    if props["Type"] == "SecureString":
        raise NotImplementedError(
            "SecureString parameters cannot be created by CloudFormation"
        )
    params: dict[str, Any] = {
        "Name": name,
        "Type": props["Type"],
        "Value": props["Value"],
        **_copy(props, "Description", "AllowedPattern", "Tier", "DataType"),
    }
    tags = props.get("Tags") or {}
    merged = {**tag_dict(ctx.stack_tags), **tags}
    if merged:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in merged.items()]
    ctx.call("ssm", "PutParameter", **params)
    return Created(name, {"Type": props["Type"], "Value": props["Value"]})


@deletes("AWS::SSM::Parameter")
def delete_parameter(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(ctx, "ssm", "DeleteParameter", Name=res.physical_id)


@creates("AWS::DynamoDB::Table")
def create_table(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("TableName") or ctx.physical_name(255)
    params: dict[str, Any] = {
        "TableName": name,
        **_copy(
            props,
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
            "TableClass",
        ),
    }
    sse = props.get("SSESpecification")
    if sse:
        params["SSESpecification"] = {"Enabled": sse.get("SSEEnabled", False)}
    tags = ctx.tags(props.get("Tags"))
    if tags:
        params["Tags"] = tags
    table = ctx.call("dynamodb", "CreateTable", **params)["TableDescription"]
    attributes = {
        "Arn": table["TableArn"],
        "StreamArn": table.get("LatestStreamArn", ""),
    }
    return Created(name, attributes)


@deletes("AWS::DynamoDB::Table")
def delete_table(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(ctx, "dynamodb", "DeleteTable", TableName=res.physical_id)


@creates("AWS::Logs::LogGroup")
def create_log_group(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("LogGroupName") or ctx.physical_name(512)
    params: dict[str, Any] = {"logGroupName": name}
    if "KmsKeyId" in props:
        params["kmsKeyId"] = props["KmsKeyId"]
    tags = tag_dict(ctx.tags(props.get("Tags")))
    if tags:
        params["tags"] = tags
    ctx.call("logs", "CreateLogGroup", **params)
    if "RetentionInDays" in props:
        ctx.call(
            "logs",
            "PutRetentionPolicy",
            logGroupName=name,
            retentionInDays=props["RetentionInDays"],
        )
    arn = f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{name}:*"
    return Created(name, {"Arn": arn})


@deletes("AWS::Logs::LogGroup")
def delete_log_group(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(ctx, "logs", "DeleteLogGroup", logGroupName=res.physical_id)


def _transformation(item: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "metricName": item["MetricName"],
        "metricNamespace": item["MetricNamespace"],
        "metricValue": str(item["MetricValue"]),
    }
    if "DefaultValue" in item:
        converted["defaultValue"] = item["DefaultValue"]
    if "Unit" in item:
        converted["unit"] = item["Unit"]
    if "Dimensions" in item:
        converted["dimensions"] = {d["Key"]: d["Value"] for d in item["Dimensions"]}
    return converted


@creates("AWS::Logs::MetricFilter")
def create_metric_filter(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("FilterName") or ctx.physical_name(512)
    ctx.call(
        "logs",
        "PutMetricFilter",
        logGroupName=props["LogGroupName"],
        filterName=name,
        filterPattern=props["FilterPattern"],
        metricTransformations=[
            _transformation(t) for t in props["MetricTransformations"]
        ],
    )
    return Created(name, {}, {"LogGroupName": props["LogGroupName"]})


@deletes("AWS::Logs::MetricFilter")
def delete_metric_filter(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(
        ctx,
        "logs",
        "DeleteMetricFilter",
        logGroupName=res.notes["LogGroupName"],
        filterName=res.physical_id,
    )


@creates("AWS::S3::Bucket")
def create_bucket(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("BucketName") or ctx.physical_name(63, lowercase=True)
    params: dict[str, Any] = {"Bucket": name}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    ctx.call("s3", "CreateBucket", **params)
    if "PublicAccessBlockConfiguration" in props:
        ctx.call(
            "s3",
            "PutPublicAccessBlock",
            Bucket=name,
            PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"],
        )
    if "VersioningConfiguration" in props:
        status = props["VersioningConfiguration"]["Status"]
        ctx.call(
            "s3",
            "PutBucketVersioning",
            Bucket=name,
            VersioningConfiguration={"Status": status},
        )
    if "BucketEncryption" in props:
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ctx.call(
            "s3",
            "PutBucketEncryption",
            Bucket=name,
            ServerSideEncryptionConfiguration={"Rules": rules},
        )
    tags = ctx.tags(props.get("Tags"))
    if tags:
        ctx.call("s3", "PutBucketTagging", Bucket=name, Tagging={"TagSet": tags})
    attributes = {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{ctx.region}.amazonaws.com",
    }
    return Created(name, attributes)


@deletes("AWS::S3::Bucket")
def delete_bucket(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(ctx, "s3", "DeleteBucket", Bucket=res.physical_id)


@creates("AWS::S3::BucketPolicy")
def create_bucket_policy(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    document = policy_text(props["PolicyDocument"])
    ctx.call("s3", "PutBucketPolicy", Bucket=props["Bucket"], Policy=document)
    return Created(props["Bucket"], {})


@deletes("AWS::S3::BucketPolicy")
def delete_bucket_policy(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(ctx, "s3", "DeleteBucketPolicy", Bucket=res.properties["Bucket"])


@creates("AWS::CloudTrail::Trail")
def create_trail(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("TrailName") or ctx.physical_name(128)
    params: dict[str, Any] = {
        "Name": name,
        **_copy(
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
    _delete(ctx, "cloudtrail", "DeleteTrail", Name=res.physical_id)


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
    _delete(
        ctx,
        "config",
        "StopConfigurationRecorder",
        ConfigurationRecorderName=res.physical_id,
    )
    _delete(
        ctx,
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
        _delete(
            ctx,
            "config",
            "StopConfigurationRecorder",
            ConfigurationRecorderName=recorder["name"],
        )
    _delete(ctx, "config", "DeleteDeliveryChannel", DeliveryChannelName=res.physical_id)


@creates("AWS::Config::ConfigRule")
def create_config_rule(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("ConfigRuleName") or ctx.physical_name(128)
    rule: dict[str, Any] = {
        "ConfigRuleName": name,
        "Source": props["Source"],
        **_copy(props, "Description", "Scope", "MaximumExecutionFrequency"),
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
    _delete(ctx, "config", "DeleteConfigRule", ConfigRuleName=res.physical_id)


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
        "cloudwatch", "PutMetricAlarm", AlarmName=name, **_copy(props, *_ALARM_KEYS)
    )
    arn = f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:alarm:{name}"
    return Created(name, {"Arn": arn})


@deletes("AWS::CloudWatch::Alarm")
def delete_alarm(ctx: ResourceContext, res: Provisioned) -> None:
    _delete(ctx, "cloudwatch", "DeleteAlarms", AlarmNames=[res.physical_id])
