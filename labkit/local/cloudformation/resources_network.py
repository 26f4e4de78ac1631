"""EC2 network types: VPC, subnet, gateway, routes, flow logs."""

from __future__ import annotations

import logging
from typing import Any

from labkit.local.cloudformation.resources import (
    Created,
    Provisioned,
    ResourceContext,
    creates,
    deletes,
)

logger = logging.getLogger(__name__)


@creates("AWS::EC2::VPC")
def create_vpc(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    vpc = ctx.call(
        "ec2",
        "CreateVpc",
        CidrBlock=props["CidrBlock"],
        InstanceTenancy=props.get("InstanceTenancy", "default"),
        TagSpecifications=ctx.tag_specifications("vpc", props),
    )["Vpc"]
    vpc_id = vpc["VpcId"]
    for name in ("EnableDnsSupport", "EnableDnsHostnames"):
        if name in props:
            ctx.call(
                "ec2",
                "ModifyVpcAttribute",
                VpcId=vpc_id,
                **{name: {"Value": props[name]}},
            )
    groups = ctx.call(
        "ec2",
        "DescribeSecurityGroups",
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ],
    )["SecurityGroups"]
    attributes = {
        "VpcId": vpc_id,
        "CidrBlock": vpc["CidrBlock"],
        "DefaultSecurityGroup": groups[0]["GroupId"] if groups else "",
    }
    return Created(vpc_id, attributes)


@deletes("AWS::EC2::VPC")
def delete_vpc(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DeleteVpc", VpcId=res.physical_id)


@creates("AWS::EC2::Subnet")
def create_subnet(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {"VpcId": props["VpcId"], "CidrBlock": props["CidrBlock"]}
    if "AvailabilityZone" in props:
        params["AvailabilityZone"] = props["AvailabilityZone"]
    subnet = ctx.call(
        "ec2",
        "CreateSubnet",
        TagSpecifications=ctx.tag_specifications("subnet", props),
        **params,
    )["Subnet"]
    subnet_id = subnet["SubnetId"]
    if "MapPublicIpOnLaunch" in props:
        ctx.call(
            "ec2",
            "ModifySubnetAttribute",
            SubnetId=subnet_id,
            MapPublicIpOnLaunch={"Value": props["MapPublicIpOnLaunch"]},
        )
    attributes = {
        "SubnetId": subnet_id,
        "AvailabilityZone": subnet["AvailabilityZone"],
        "CidrBlock": subnet["CidrBlock"],
        "VpcId": subnet["VpcId"],
    }
    return Created(subnet_id, attributes)


@deletes("AWS::EC2::Subnet")
def delete_subnet(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DeleteSubnet", SubnetId=res.physical_id)


@creates("AWS::EC2::InternetGateway")
def create_internet_gateway(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    gateway = ctx.call(
        "ec2",
        "CreateInternetGateway",
        TagSpecifications=ctx.tag_specifications("internet-gateway", props),
    )["InternetGateway"]
    gateway_id = gateway["InternetGatewayId"]
    return Created(gateway_id, {"InternetGatewayId": gateway_id})


@deletes("AWS::EC2::InternetGateway")
def delete_internet_gateway(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DeleteInternetGateway", InternetGatewayId=res.physical_id)


@creates("AWS::EC2::VPCGatewayAttachment")
def create_gateway_attachment(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    if "InternetGatewayId" not in props:
        raise NotImplementedError("VPN gateway attachments are not supported")
    ctx.call(
        "ec2",
        "AttachInternetGateway",
        InternetGatewayId=props["InternetGatewayId"],
        VpcId=props["VpcId"],
    )
    physical_id = f"IGW|{props['VpcId']}"
    return Created(physical_id, {"AttachmentType": "IGW", "VpcId": props["VpcId"]})


@deletes("AWS::EC2::VPCGatewayAttachment")
def delete_gateway_attachment(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete(
        "ec2",
        "DetachInternetGateway",
        InternetGatewayId=res.properties["InternetGatewayId"],
        VpcId=res.properties["VpcId"],
    )


@creates("AWS::EC2::RouteTable")
def create_route_table(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    table = ctx.call(
        "ec2",
        "CreateRouteTable",
        VpcId=props["VpcId"],
        TagSpecifications=ctx.tag_specifications("route-table", props),
    )["RouteTable"]
    return Created(table["RouteTableId"], {"RouteTableId": table["RouteTableId"]})


@deletes("AWS::EC2::RouteTable")
def delete_route_table(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DeleteRouteTable", RouteTableId=res.physical_id)


_ROUTE_TARGETS = (
    "GatewayId",
    "NatGatewayId",
    "InstanceId",
    "NetworkInterfaceId",
    "VpcPeeringConnectionId",
    "TransitGatewayId",
    "EgressOnlyInternetGatewayId",
    "VpcEndpointId",
)


@creates("AWS::EC2::Route")
def create_route(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    keys = ("RouteTableId", "DestinationCidrBlock", "DestinationIpv6CidrBlock")
    params = {key: props[key] for key in keys + _ROUTE_TARGETS if key in props}
    ctx.call("ec2", "CreateRoute", **params)
    destination = props.get("DestinationCidrBlock") or props.get(
        "DestinationIpv6CidrBlock"
    )
    physical_id = f"rtb-{props['RouteTableId'][4:]}|{destination}"
    return Created(physical_id)


@deletes("AWS::EC2::Route")
def delete_route(ctx: ResourceContext, res: Provisioned) -> None:
    keys = ("RouteTableId", "DestinationCidrBlock", "DestinationIpv6CidrBlock")
    params = {key: res.properties[key] for key in keys if key in res.properties}
    ctx.delete("ec2", "DeleteRoute", **params)


@creates("AWS::EC2::SubnetRouteTableAssociation")
def create_route_association(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    association = ctx.call(
        "ec2",
        "AssociateRouteTable",
        RouteTableId=props["RouteTableId"],
        SubnetId=props["SubnetId"],
    )["AssociationId"]
    return Created(association, {"Id": association})


@deletes("AWS::EC2::SubnetRouteTableAssociation")
def delete_route_association(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DisassociateRouteTable", AssociationId=res.physical_id)


@creates("AWS::EC2::FlowLog")
def create_flow_log(ctx: ResourceContext, props: dict[str, Any]) -> Created:
    params: dict[str, Any] = {
        "ResourceIds": [props["ResourceId"]],
        "ResourceType": props["ResourceType"],
    }
    copied = (
        "TrafficType",
        "LogDestinationType",
        "LogDestination",
        "LogGroupName",
        "DeliverLogsPermissionArn",
        "LogFormat",
        "MaxAggregationInterval",
    )
    params.update({key: props[key] for key in copied if key in props})
    response = ctx.call("ec2", "CreateFlowLogs", **params)
    if response.get("Unsuccessful"):
        raise RuntimeError(response["Unsuccessful"][0]["Error"]["Message"])
    flow_log_id = response["FlowLogIds"][0]
    return Created(flow_log_id, {"Id": flow_log_id})


@deletes("AWS::EC2::FlowLog")
def delete_flow_log(ctx: ResourceContext, res: Provisioned) -> None:
    ctx.delete("ec2", "DeleteFlowLogs", FlowLogIds=[res.physical_id])
