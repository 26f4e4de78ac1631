"""The credentials an instance's metadata service hands out.

In AWS an instance with an instance profile reads temporary keys of the
profile's role from its metadata service (IMDS); the AWS CLI and SDKs on the
instance sign with them. EC2 gets them by assuming the role with the
instance id as the session name, so CloudTrail shows the caller as
``assumed-role/<role>/<instance-id>``. Locally the same keys come from the
local cloud's own STS, and are renewed before they expire, as IMDS renews
them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from labkit.local import internal
from labkit.local.gateway import RESET_HOOKS

if TYPE_CHECKING:
    from labkit.local.workloads import Instance

logger = logging.getLogger(__name__)

# IMDS offers new keys at least five minutes before the old ones expire.
_RENEW_BEFORE = timedelta(minutes=5)

_SESSIONS: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class InstanceProfile:
    """An IAM instance profile, as the local cloud's IAM holds it.

    Attributes:
        arn: the profile's ARN.
        profile_id: IAM's ``InstanceProfileId`` (``AIPA...`` in AWS).
        role_arns: the ARNs of its roles (IAM allows one).
    """

    arn: str
    profile_id: str
    role_arns: tuple[str, ...]


def instance_profile(arn: str) -> InstanceProfile | None:
    """Read the instance profile ``arn`` names, or None if IAM has none.

    Read from moto's IAM backend in this process, not through the gateway:
    these are the local cloud's own look-ups (IMDS finding the role, the
    detector naming the profile), which in AWS are no API call of the
    account and so must not appear as one (in CloudTrail, say).
    """
    from moto.backends import get_backend
    from moto.iam.exceptions import NotFoundException

    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "iam":
        raise ValueError(f"not an IAM instance profile ARN: {arn!r}")
    backend = get_backend("iam")[parts[4]][parts[1]]
    try:
        found = backend.get_instance_profile_by_arn(arn)
    except NotFoundException:
        return None
    return InstanceProfile(
        arn=found.arn,
        profile_id=found.id,
        role_arns=tuple(role.arn for role in found.roles),
    )


def role_arn(instance: Instance) -> str | None:
    """Return the ARN of the instance profile's role, or None without one.

    A profile deleted while the instance runs (a stack being deleted) has
    no role left, and IMDS then has no keys to give.
    """
    arn = instance.description.get("IamInstanceProfile", {}).get("Arn")
    profile = instance_profile(str(arn)) if arn else None
    if profile is None or not profile.role_arns:
        return None
    return profile.role_arns[0]


def role_credentials(instance: Instance) -> dict[str, Any] | None:
    """Return the role keys IMDS would give ``instance`` now, or None.

    The keys (``AccessKeyId``, ``SecretAccessKey``, ``SessionToken``,
    ``Expiration``) are real STS session keys of the local cloud. An
    instance without an instance profile, or whose profile has no role, has
    none, as its metadata service would have none.
    """
    held = _SESSIONS.get(instance.instance_id)
    now = datetime.now(UTC)
    if held is not None and held["Expiration"] - now > _RENEW_BEFORE:
        return held

    arn = role_arn(instance)
    if arn is None:
        return None
    sts = internal.client("sts", instance.region)
    reply = sts.assume_role(RoleArn=arn, RoleSessionName=instance.instance_id)
    credentials = dict(reply["Credentials"])
    _SESSIONS[instance.instance_id] = credentials
    logger.info("issued role session %s for %s", arn, instance.instance_id)
    return credentials


def _reset() -> None:
    _SESSIONS.clear()


RESET_HOOKS.append(_reset)
