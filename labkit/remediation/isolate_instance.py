"""Isolate the EC2 instance named in a GuardDuty finding.

The Lambda function Security-Workshop-Remediation-EC2-MaliciousIPCaller runs
this handler when the rule GuardDuty-Event-EC2-MaliciousIPCaller matches. It
replaces every security group of the instance with the forensic group, which
lets no traffic in or out (no inbound rule, and one outbound rule that no
packet can match), then publishes what it did to the GuardDuty topic.
Running it again on an isolated instance changes nothing and publishes
nothing.

Changing security groups does not cut connections the instance already has
open: security groups track connections, so an established flow can outlive
the swap. The message says so, and what to do about it.

Environment variables:
    FORENSIC_SECURITY_GROUP_ID: the group that allows no traffic, in the
        instance's VPC.
    TOPIC_ARN: the SNS topic that receives the remediation message.

Permissions of the execution role: ``ec2:DescribeInstances``,
``ec2:ModifyInstanceAttribute`` on the instance and the groups,
``sns:Publish`` on TOPIC_ARN, and ``logs:CreateLogStream`` /
``logs:PutLogEvents`` on the function's own log group.

This module imports only boto3 and the standard library: it is deployed alone,
at the root of the function's zip.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3

logger = logging.getLogger(__name__)
# Lambda's root logger passes WARNING and above only; what the function
# changed belongs in its log.
logger.setLevel(logging.INFO)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Move the finding's instance into the forensic security group.

    Args:
        event: the EventBridge event of a GuardDuty finding (camelCase
            ``detail``), whose resource is an instance.
        context: the Lambda context (unused).

    Returns:
        ``findingId``, ``instanceId``, ``previousGroups``, ``securityGroups``
        and ``changed`` (False when the instance was already isolated). When
        the finding names no instance: ``changed`` False and ``reason``.
    """
    forensic_group = _setting("FORENSIC_SECURITY_GROUP_ID")
    topic_arn = _setting("TOPIC_ARN")
    detail = event.get("detail") or {}
    finding_id = str(detail.get("id", "unknown"))
    instance_id = _instance_id(detail)
    if instance_id is None:
        logger.warning("Finding %s names no instance; nothing to isolate", finding_id)
        return {"findingId": finding_id, "changed": False, "reason": "no instance"}

    ec2 = boto3.client("ec2")
    previous = _security_groups(ec2, instance_id)
    result = {
        "findingId": finding_id,
        "instanceId": instance_id,
        "previousGroups": previous,
        "securityGroups": [forensic_group],
        "changed": previous != [forensic_group],
    }
    if not result["changed"]:
        logger.info(
            "Instance %s is already isolated in %s", instance_id, forensic_group
        )
        return result

    ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[forensic_group])
    logger.info(
        "Moved instance %s from %s into %s",
        instance_id,
        ", ".join(previous),
        forensic_group,
    )
    subject = f"GuardDuty remediation: instance {instance_id} isolated"
    boto3.client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject[:100],
        Message=_message(finding_id, instance_id, previous, forensic_group),
    )
    logger.info("Published the remediation message to %s", topic_arn)
    return result


def _setting(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(
            f"Environment variable {name} is not set; the function's "
            "configuration must give it (see this module's docstring)."
        )
    return value


def _instance_id(detail: dict[str, Any]) -> str | None:
    resource = detail.get("resource") or {}
    instance = resource.get("instanceDetails") or {}
    value = instance.get("instanceId")
    return str(value) if value else None


def _security_groups(ec2: Any, instance_id: str) -> list[str]:
    # The instance's own SecurityGroups, not its network interface's: they
    # are what modify_instance_attribute(Groups=...) replaces.
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0]
    return [group["GroupId"] for group in instance.get("SecurityGroups", [])]


def _message(
    finding_id: str, instance_id: str, previous: list[str], forensic_group: str
) -> str:
    return "\n".join(
        [
            f"GuardDuty finding {finding_id} reported that instance {instance_id}",
            "communicates with an address on a threat list.",
            "",
            f"Done: the instance's security groups ({', '.join(previous) or 'none'})",
            f"were replaced by the forensic group {forensic_group}, which allows",
            "no inbound and no outbound traffic. The instance keeps running.",
            "",
            "Next steps:",
            "- Snapshot its volumes and keep them as evidence before changing it.",
            "- Connections open before the swap may persist: add a network ACL",
            "  deny or stop the instance if traffic continues.",
            "- Find how it was compromised (flow logs, CloudTrail, the instance's",
            "  own logs), then rebuild it from a known-good image.",
        ]
    )
