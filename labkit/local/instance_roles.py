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


def role_arn(instance: Instance) -> str | None:
    """Return the ARN of the instance profile's role, or None without one."""
    profile = instance.description.get("IamInstanceProfile", {}).get("Arn")
    if not profile:
        return None
    iam = internal.client("iam", instance.region)
    name = str(profile).rsplit("/", 1)[-1]
    try:
        found = iam.get_instance_profile(InstanceProfileName=name)
    except iam.exceptions.NoSuchEntityException:
        # Deleted while the instance runs (a stack being deleted): IMDS too
        # then has no keys to give.
        return None
    roles = found["InstanceProfile"]["Roles"]
    return str(roles[0]["Arn"]) if roles else None


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
