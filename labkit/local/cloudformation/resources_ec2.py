"""EC2 types: security groups, Elastic IPs and instances.

Unlike moto's own engine, security groups honour inline egress rules (the
default allow-all egress rule is revoked when egress rules are given, as in
AWS) and instances honour ``SecurityGroupIds``.
"""

from __future__ import annotations

import base64
import binascii
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
)

logger = logging.getLogger(__name__)


def ip_permission(rule: dict[str, Any], *, egress: bool) -> dict[str, Any]:
    """Return one template rule (ingress or egress) as an EC2 IpPermission.

    Args:
        rule: the rule as the template writes it (``CidrIp``, ``FromPort``...).
        egress: whether the rule is an egress rule (destination fields).

    Returns:
        The rule in the shape ``AuthorizeSecurityGroupIngress`` takes.
    """
    permission: dict[str, Any] = {"IpProtocol": str(rule["IpProtocol"])}
    for key in ("FromPort", "ToPort"):
        if key in rule:
            permission[key] = int(rule[key])
    description = {"Description": rule["Description"]} if "Description" in rule else {}
    if "CidrIp" in rule:
        permission["IpRanges"] = [{"CidrIp": rule["CidrIp"], **description}]
    if "CidrIpv6" in rule:
        permission["Ipv6Ranges"] = [{"CidrIpv6": rule["CidrIpv6"], **description}]
    prefix = rule.get("DestinationPrefixListId" if egress else "SourcePrefixListId")
    if prefix:
        permission["PrefixListIds"] = [{"PrefixListId": prefix, **description}]
    group = rule.get(
        "DestinationSecurityGroupId" if egress else "SourceSecurityGroupId"
    )
    if group:
        pair = {"GroupId": group, **description}
        if rule.get("SourceSecurityGroupOwnerId"):
            pair["UserId"] = rule["SourceSecurityGroupOwnerId"]
        permission["UserIdGroupPairs"] = [pair]
    elif rule.get("SourceSecurityGroupName"):
        permission["UserIdGroupPairs"] = [
            {"GroupName": rule["SourceSecurityGroupName"]}
        ]
    return permission


_ALLOW_ALL_EGRESS = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


@creates("AWS::EC2::SecurityGroup")
def create_security_group(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {
        "GroupName": props.get("GroupName") or ctx.physical_name(255),
        "Description": props["GroupDescription"],
        "TagSpecifications": ctx.tag_specifications("security-group", props),
    }
    if "VpcId" in props:
        params["VpcId"] = props["VpcId"]
    group_id = ctx.call("ec2", "CreateSecurityGroup", **params)["GroupId"]

    ingress = [
        ip_permission(rule, egress=False)
        for rule in props.get("SecurityGroupIngress", [])
    ]
    if ingress:
        ctx.call(
            "ec2",
            "AuthorizeSecurityGroupIngress",
            GroupId=group_id,
            IpPermissions=ingress,
        )
    egress = [
        ip_permission(rule, egress=True)
        for rule in props.get("SecurityGroupEgress", [])
    ]
    if egress and "VpcId" in props:
        # AWS adds the allow-all egress rule only when the template gives none.
        ctx.call(
            "ec2",
            "RevokeSecurityGroupEgress",
            GroupId=group_id,
            IpPermissions=[_ALLOW_ALL_EGRESS],
        )
        ctx.call(
            "ec2",
            "AuthorizeSecurityGroupEgress",
            GroupId=group_id,
            IpPermissions=egress,
        )

    attributes = {"GroupId": group_id, "VpcId": props.get("VpcId", "")}
    # Ref gives the id for a VPC group and the name for an EC2-Classic one.
    physical_id = group_id if "VpcId" in props else params["GroupName"]
    return Created(physical_id, attributes, {"GroupId": group_id})


@deletes("AWS::EC2::SecurityGroup")
def delete_security_group(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DeleteSecurityGroup", GroupId=res.notes["GroupId"])


def _group_rule(
    ctx: ResourceContext, props: dict[str, Any], *, egress: bool
) -> Created:
    direction = "Egress" if egress else "Ingress"
    permission = ip_permission(props, egress=egress)
    response = ctx.call(
        "ec2",
        f"AuthorizeSecurityGroup{direction}",
        GroupId=props["GroupId"],
        IpPermissions=[permission],
    )
    rules = response.get("SecurityGroupRules") or [{}]
    rule_id = rules[0].get("SecurityGroupRuleId") or ctx.physical_name(64)
    return Created(rule_id, {"Id": rule_id}, {"Permission": permission})


@creates("AWS::EC2::SecurityGroupIngress")
def create_ingress(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    return _group_rule(ctx, props, egress=False)


@deletes("AWS::EC2::SecurityGroupIngress")
def delete_ingress(ctx: ResourceContext, res: Provisioned) -> None:
    permission = [res.notes["Permission"]]
    group_id = res.properties["GroupId"]
    ctx.delete(
        "ec2", "RevokeSecurityGroupIngress", GroupId=group_id, IpPermissions=permission
    )


@creates("AWS::EC2::SecurityGroupEgress")
def create_egress(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    return _group_rule(ctx, props, egress=True)


@deletes("AWS::EC2::SecurityGroupEgress")
def delete_egress(ctx: ResourceContext, res: Provisioned) -> None:
    permission = [res.notes["Permission"]]
    group_id = res.properties["GroupId"]
    ctx.delete(
        "ec2", "RevokeSecurityGroupEgress", GroupId=group_id, IpPermissions=permission
    )


@creates("AWS::EC2::EIP")
def create_eip(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"Domain": props.get("Domain", "vpc")}
    specs = ctx.tag_specifications("elastic-ip", props)
    if specs:
        params["TagSpecifications"] = specs
    address = ctx.call("ec2", "AllocateAddress", **params)
    allocation_id, public_ip = address["AllocationId"], address["PublicIp"]
    if "InstanceId" in props:
        ctx.call(
            "ec2",
            "AssociateAddress",
            AllocationId=allocation_id,
            InstanceId=props["InstanceId"],
        )
    attributes = {"AllocationId": allocation_id, "PublicIp": public_ip}
    return Created(public_ip, attributes, {"AllocationId": allocation_id})


@deletes("AWS::EC2::EIP")
def delete_eip(ctx: ResourceContext, res: Provisioned) -> None:
    allocation_id = res.notes["AllocationId"]
    try:
        found = ctx.call("ec2", "DescribeAddresses", AllocationIds=[allocation_id])[
            "Addresses"
        ]
    except ClientError as error:
        if is_gone(error):
            return
        raise
    for address in found:
        if address.get("AssociationId"):
            ctx.delete(
                "ec2", "DisassociateAddress", AssociationId=address["AssociationId"]
            )
    ctx.delete("ec2", "ReleaseAddress", AllocationId=allocation_id)


@creates("AWS::EC2::EIPAssociation")
def create_eip_association(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    keys = ("AllocationId", "InstanceId", "NetworkInterfaceId", "PrivateIpAddress")
    params = {key: props[key] for key in keys if key in props}
    if "EIP" in props and "AllocationId" not in params:
        params["PublicIp"] = props["EIP"]
    association = ctx.call("ec2", "AssociateAddress", **params)["AssociationId"]
    return Created(association, {"Id": association})


@deletes("AWS::EC2::EIPAssociation")
def delete_eip_association(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DisassociateAddress", AssociationId=res.physical_id)


def _user_data(encoded: str) -> str:
    # The template gives base64 text and boto3 encodes user data itself.
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return encoded


@creates("AWS::EC2::Instance")
def create_instance(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {
        "ImageId": props["ImageId"],
        "InstanceType": props.get("InstanceType", "m1.small"),
        "MinCount": 1,
        "MaxCount": 1,
        "TagSpecifications": ctx.tag_specifications("instance", props),
    }
    copied = (
        "SubnetId",
        "SecurityGroupIds",
        "KeyName",
        "PrivateIpAddress",
        "Monitoring",
    )
    params.update({key: props[key] for key in copied if key in props})
    if "SecurityGroups" in props:
        params["SecurityGroups"] = props["SecurityGroups"]
    if "AvailabilityZone" in props:
        params["Placement"] = {"AvailabilityZone": props["AvailabilityZone"]}
    if "IamInstanceProfile" in props:
        profile = str(props["IamInstanceProfile"])
        key = "Arn" if profile.startswith("arn:") else "Name"
        params["IamInstanceProfile"] = {key: profile}
    if "UserData" in props:
        params["UserData"] = _user_data(props["UserData"])
    if "NetworkInterfaces" in props:
        raise NotImplementedError("Instance NetworkInterfaces are not supported")

    instance = ctx.call("ec2", "RunInstances", **params)["Instances"][0]
    instance_id = instance["InstanceId"]
    attributes = {
        "InstanceId": instance_id,
        "AvailabilityZone": instance["Placement"]["AvailabilityZone"],
        "PrivateIp": instance.get("PrivateIpAddress", ""),
        "PrivateDnsName": instance.get("PrivateDnsName", ""),
        "PublicIp": instance.get("PublicIpAddress", ""),
        "PublicDnsName": instance.get("PublicDnsName", ""),
    }
    return Created(instance_id, attributes)


@deletes("AWS::EC2::Instance")
def delete_instance(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "TerminateInstances", InstanceIds=[res.physical_id])
