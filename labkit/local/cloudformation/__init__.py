"""The local cloud's own CloudFormation engine.

Importing this package registers the CloudFormation operations with
:mod:`labkit.local.registry` and the supported resource types with
:mod:`labkit.local.cloudformation.resources`.
"""

from __future__ import annotations

from labkit.local.cloudformation import (
    operations,
    resources_data,
    resources_ec2,
    resources_iam,
    resources_messaging,
    resources_monitoring,
    resources_network,
)
from labkit.local.cloudformation.resources import RESOURCE_TYPES
from labkit.local.cloudformation.stacks import reset_stacks, wait_for_stacks

__all__ = [
    "RESOURCE_TYPES",
    "operations",
    "reset_stacks",
    "resources_data",
    "resources_ec2",
    "resources_iam",
    "resources_messaging",
    "resources_monitoring",
    "resources_network",
    "wait_for_stacks",
]
