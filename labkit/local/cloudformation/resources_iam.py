"""IAM resource types: roles, instance profiles, users, keys and policies.

A role or user is deleted after the stack's own policies are removed from it,
as CloudFormation does. A policy added outside the stack (say, by a
remediation function) makes the delete fail with IAM's DeleteConflict, as in
AWS, so the stack ends in DELETE_FAILED until that policy is removed.
"""

from __future__ import annotations

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
)

logger = logging.getLogger(__name__)


def _path(props: dict[str, Any]) -> dict[str, str]:
    return {"Path": props["Path"]} if "Path" in props else {}


def _put_policies(
    ctx: ResourceContext, props: dict[str, Any], kind: str, name: str
) -> None:
    for policy in props.get("Policies", []):
        ctx.call(
            "iam",
            f"Put{kind}Policy",
            **{f"{kind}Name": name},
            PolicyName=policy["PolicyName"],
            PolicyDocument=policy_text(policy["PolicyDocument"]),
        )
    for arn in props.get("ManagedPolicyArns", []):
        ctx.call("iam", f"Attach{kind}Policy", **{f"{kind}Name": name}, PolicyArn=arn)


def _remove_policies(ctx: ResourceContext, res: Provisioned, kind: str) -> None:
    name = {f"{kind}Name": res.physical_id}
    for policy in res.properties.get("Policies", []):
        ctx.delete(
            "iam", f"Delete{kind}Policy", **name, PolicyName=policy["PolicyName"]
        )
    for arn in res.properties.get("ManagedPolicyArns", []):
        ctx.delete("iam", f"Detach{kind}Policy", **name, PolicyArn=arn)


@creates("AWS::IAM::Role")
def create_role(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("RoleName") or ctx.physical_name(64)
    params: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": policy_text(props["AssumeRolePolicyDocument"]),
        **_path(props),
    }
    copied = ("Description", "MaxSessionDuration", "PermissionsBoundary")
    params.update({key: props[key] for key in copied if key in props})
    tags = ctx.tags(props.get("Tags"))
    if tags:
        params["Tags"] = tags
    role = ctx.call("iam", "CreateRole", **params)["Role"]
    _put_policies(ctx, props, "Role", name)
    return Created(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})


@deletes("AWS::IAM::Role")
def delete_role(ctx: ResourceContext, res: Provisioned) -> None:
    _remove_policies(ctx, res, "Role")
    try:
        profiles = ctx.call(
            "iam", "ListInstanceProfilesForRole", RoleName=res.physical_id
        )
    except ClientError as error:
        if is_gone(error):
            return
        raise
    for profile in profiles["InstanceProfiles"]:
        ctx.delete(
            "iam",
            "RemoveRoleFromInstanceProfile",
            InstanceProfileName=profile["InstanceProfileName"],
            RoleName=res.physical_id,
        )
    ctx.delete("iam", "DeleteRole", RoleName=res.physical_id)


@creates("AWS::IAM::InstanceProfile")
def create_instance_profile(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("InstanceProfileName") or ctx.physical_name(128)
    profile = ctx.call(
        "iam", "CreateInstanceProfile", InstanceProfileName=name, **_path(props)
    )["InstanceProfile"]
    for role in props.get("Roles", []):
        ctx.call(
            "iam", "AddRoleToInstanceProfile", InstanceProfileName=name, RoleName=role
        )
    return Created(name, {"Arn": profile["Arn"]})


@deletes("AWS::IAM::InstanceProfile")
def delete_instance_profile(ctx: ResourceContext, res: Provisioned) -> None:
    for role in res.properties.get("Roles", []):
        ctx.delete(
            "iam",
            "RemoveRoleFromInstanceProfile",
            InstanceProfileName=res.physical_id,
            RoleName=role,
        )
    ctx.delete("iam", "DeleteInstanceProfile", InstanceProfileName=res.physical_id)


@creates("AWS::IAM::User")
def create_user(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    name = props.get("UserName") or ctx.physical_name(64)
    params: dict[str, Any] = {"UserName": name, **_path(props)}
    tags = ctx.tags(props.get("Tags"))
    if tags:
        params["Tags"] = tags
    user = ctx.call("iam", "CreateUser", **params)["User"]
    _put_policies(ctx, props, "User", name)
    for group in props.get("Groups", []):
        ctx.call("iam", "AddUserToGroup", GroupName=group, UserName=name)
    return Created(name, {"Arn": user["Arn"]})


@deletes("AWS::IAM::User")
def delete_user(ctx: ResourceContext, res: Provisioned) -> None:
    _remove_policies(ctx, res, "User")
    for group in res.properties.get("Groups", []):
        ctx.delete(
            "iam", "RemoveUserFromGroup", GroupName=group, UserName=res.physical_id
        )
    ctx.delete("iam", "DeleteUser", UserName=res.physical_id)


@creates("AWS::IAM::AccessKey")
def create_access_key(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    key = ctx.call("iam", "CreateAccessKey", UserName=props["UserName"])["AccessKey"]
    key_id = key["AccessKeyId"]
    if str(props.get("Status", "Active")) == "Inactive":
        ctx.call(
            "iam",
            "UpdateAccessKey",
            UserName=props["UserName"],
            AccessKeyId=key_id,
            Status="Inactive",
        )
    return Created(key_id, {"SecretAccessKey": key["SecretAccessKey"]})


@deletes("AWS::IAM::AccessKey")
def delete_access_key(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete(
        "iam",
        "DeleteAccessKey",
        UserName=res.properties["UserName"],
        AccessKeyId=res.physical_id,
    )


_PRINCIPALS = (("Roles", "Role"), ("Users", "User"), ("Groups", "Group"))


@creates("AWS::IAM::Policy")
def create_policy(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    document = policy_text(props["PolicyDocument"])
    for prop, kind in _PRINCIPALS:
        for name in props.get(prop, []):
            ctx.call(
                "iam",
                f"Put{kind}Policy",
                **{f"{kind}Name": name},
                PolicyName=props["PolicyName"],
                PolicyDocument=document,
            )
    physical_id = f"{ctx.stack_name[:5]}-{ctx.physical_name(20)[-12:]}"
    return Created(physical_id, {"Id": physical_id})


@deletes("AWS::IAM::Policy")
def delete_policy(ctx: ResourceContext, res: Provisioned) -> None:
    for prop, kind in _PRINCIPALS:
        for name in res.properties.get(prop, []):
            ctx.delete(
                "iam",
                f"Delete{kind}Policy",
                **{f"{kind}Name": name},
                PolicyName=res.properties["PolicyName"],
            )


@creates("AWS::IAM::ManagedPolicy")
def create_managed_policy(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {
        "PolicyName": props.get("ManagedPolicyName") or ctx.physical_name(128),
        "PolicyDocument": policy_text(props["PolicyDocument"]),
        **_path(props),
    }
    if "Description" in props:
        params["Description"] = props["Description"]
    policy = ctx.call("iam", "CreatePolicy", **params)["Policy"]
    arn = policy["Arn"]
    for prop, kind in _PRINCIPALS:
        for name in props.get(prop, []):
            ctx.call(
                "iam", f"Attach{kind}Policy", **{f"{kind}Name": name}, PolicyArn=arn
            )
    attributes = {"PolicyArn": arn, "PolicyId": policy["PolicyId"]}
    return Created(arn, attributes)


@deletes("AWS::IAM::ManagedPolicy")
def delete_managed_policy(ctx: ResourceContext, res: Provisioned) -> None:
    for prop, kind in _PRINCIPALS:
        for name in res.properties.get(prop, []):
            ctx.delete(
                "iam",
                f"Detach{kind}Policy",
                **{f"{kind}Name": name},
                PolicyArn=res.physical_id,
            )
    ctx.delete("iam", "DeletePolicy", PolicyArn=res.physical_id)
