"""Storage types: SSM parameters, DynamoDB, CloudWatch Logs and S3.

A bucket is deleted only when empty: a bucket holding objects fails to delete
with S3's own BucketNotEmpty message, as in AWS.
"""

from __future__ import annotations

import logging
from typing import Any

from labkit.local.cloudformation.resources import (
    Created,
    Provisioned,
    ResourceContext,
    creates,
    deletes,
    pick,
    policy_text,
    tag_dict,
)

logger = logging.getLogger(__name__)


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
        **pick(props, "Description", "AllowedPattern", "Tier", "DataType"),
    }
    tags = props.get("Tags") or {}
    merged = {**tag_dict(ctx.stack_tags), **tags}
    if merged:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in merged.items()]
    ctx.call("ssm", "PutParameter", **params)
    return Created(name, {"Type": props["Type"], "Value": props["Value"]})


@deletes("AWS::SSM::Parameter")
def delete_parameter(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ssm", "DeleteParameter", Name=res.physical_id)


@creates("AWS::DynamoDB::Table")
def create_table(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("TableName") or ctx.physical_name(255)
    params: dict[str, Any] = {
        "TableName": name,
        **pick(
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
    ctx.delete("dynamodb", "DeleteTable", TableName=res.physical_id)


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
    ctx.delete("logs", "DeleteLogGroup", logGroupName=res.physical_id)


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
    ctx.delete(
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
    ctx.delete("s3", "DeleteBucket", Bucket=res.physical_id)


@creates("AWS::S3::BucketPolicy")
def create_bucket_policy(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    document = policy_text(props["PolicyDocument"])
    ctx.call("s3", "PutBucketPolicy", Bucket=props["Bucket"], Policy=document)
    return Created(props["Bucket"], {})


@deletes("AWS::S3::BucketPolicy")
def delete_bucket_policy(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("s3", "DeleteBucketPolicy", Bucket=res.properties["Bucket"])
