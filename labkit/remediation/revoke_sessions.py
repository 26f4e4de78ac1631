"""Revoke the sessions of an instance role whose credentials were exfiltrated.

The Lambda function Security-Workshop-Remediation-InstanceCredentialExfiltration
runs this handler when the rule
GuardDuty-Event-IAMUser-InstanceCredentialExfiltration matches. It reads the
role name from the finding and attaches to that role the inline policy
``RevokeOldSessions``: deny everything to sessions issued before now. Stolen
temporary credentials stop working at once; the instance gets fresh ones from
its metadata service, issued after the cutoff, and carries on.

It acts on one role only, the one named by ALLOWED_ROLE_NAME, and refuses any
other: a finding is data from outside, and PutRolePolicy could otherwise deny
(or, with another document, grant) anything to any role. The execution role
is limited to that role too. Running it again moves the cutoff to the new now.

The policy's condition key ``aws:TokenIssueTime`` exists only for temporary
credentials: the policy does nothing to an IAM user's long-term access key,
which must be deactivated instead.

Environment variables:
    ALLOWED_ROLE_NAME: the only role this function may act on.
    TOPIC_ARN: the SNS topic that receives the remediation message.

Permissions of the execution role: ``iam:PutRolePolicy`` on that role,
``sns:Publish`` on TOPIC_ARN, and ``logs:CreateLogStream`` /
``logs:PutLogEvents`` on the function's own log group.

This module imports only boto3 and the standard library: it is deployed alone,
at the root of the function's zip.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

import boto3

logger = logging.getLogger(__name__)
# Lambda's root logger passes WARNING and above only; what the function
# changed belongs in its log.
logger.setLevel(logging.INFO)

POLICY_NAME = "RevokeOldSessions"


def revoke_policy(cutoff: datetime) -> dict[str, Any]:
    """Return the policy denying every session issued before ``cutoff``.

    Args:
        cutoff: an aware datetime; it is written in UTC with a ``Z``, so the
            policy is the same whatever the host's time zone.

    Returns:
        The policy document as a dict.
    """
    if cutoff.tzinfo is None:
        raise ValueError(
            f"cutoff {cutoff!r} has no time zone; pass an aware datetime, "
            "such as datetime.now(UTC)."
        )
    stamp = cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": stamp}},
            }
        ],
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Deny the finding's role every session issued before now.

    Args:
        event: the EventBridge event of a GuardDuty finding (camelCase
            ``detail``) whose ``resource.accessKeyDetails.userName`` is the
            role name.
        context: the Lambda context (unused).

    Returns:
        ``findingId``, ``roleName`` and ``changed``; when the policy was put,
        also ``policyName`` and ``cutoff``; when refused, ``reason``.
    """
    allowed_role = _setting("ALLOWED_ROLE_NAME")
    topic_arn = _setting("TOPIC_ARN")
    detail = event.get("detail") or {}
    finding_id = str(detail.get("id", "unknown"))
    resource = detail.get("resource") or {}
    role_name = str((resource.get("accessKeyDetails") or {}).get("userName") or "")
    if role_name != allowed_role:
        logger.warning(
            "Refused finding %s: role %r is not %r, the only role this function "
            "may act on; remediate it by hand",
            finding_id,
            role_name,
            allowed_role,
        )
        return {
            "findingId": finding_id,
            "roleName": role_name,
            "changed": False,
            "reason": f"role {role_name!r} is not the allowed role {allowed_role!r}",
        }

    policy = revoke_policy(datetime.now(UTC))
    cutoff = policy["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    boto3.client("iam").put_role_policy(
        RoleName=role_name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
    )
    logger.info(
        "Put %s on role %s: sessions before %s denied", POLICY_NAME, role_name, cutoff
    )
    boto3.client("sns").publish(
        TopicArn=topic_arn,
        Subject=f"GuardDuty remediation: sessions of {role_name} revoked"[:100],
        Message=_message(finding_id, role_name, cutoff),
    )
    logger.info("Published the remediation message to %s", topic_arn)
    return {
        "findingId": finding_id,
        "roleName": role_name,
        "changed": True,
        "policyName": POLICY_NAME,
        "cutoff": cutoff,
    }


def _setting(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(
            f"Environment variable {name} is not set; the function's "
            "configuration must give it (see this module's docstring)."
        )
    return value


def _message(finding_id: str, role_name: str, cutoff: str) -> str:
    return "\n".join(
        [
            f"GuardDuty finding {finding_id} reported that temporary credentials",
            f"of role {role_name} were used from outside AWS.",
            "",
            f"Done: the inline policy {POLICY_NAME} on {role_name} now denies",
            f"every action to sessions issued before {cutoff}. Stolen credentials",
            "stop working; instances using the role fetch new ones and go on.",
            "",
            "Next steps:",
            "- Find the instance whose credentials leaked and how (CloudTrail",
            "  shows what the stolen session did and from which address).",
            "- Check every other instance that uses this role.",
            f"- Remove {POLICY_NAME} from the role before deleting the stack.",
        ]
    )
