"""Stack parameters, capabilities and template sources, checked as AWS does.

Parameter values are checked against the template's constraints
(``AllowedValues``, ``AllowedPattern``, lengths, number ranges) and
``AWS::SSM::Parameter::Value<...>`` parameters are read from Parameter Store
at creation, as CloudFormation does.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from labkit.local import internal
from labkit.local.registry import ServiceError
from labkit.template import parameter_value

logger = logging.getLogger(__name__)

IAM_TYPES = {
    "AWS::IAM::AccessKey",
    "AWS::IAM::Group",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::IAM::User",
    "AWS::IAM::UserToGroupAddition",
}
_NAME_PROPERTIES = {
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
}
_SSM_TYPE = re.compile(r"^AWS::SSM::Parameter::Value<(.+)>$")


def _invalid(message: str) -> ServiceError:
    return ServiceError("ValidationError", message)


def required_capabilities(template: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return the capabilities a template needs and the types that need them.

    Returns:
        ``(["CAPABILITY_IAM"] or ["CAPABILITY_NAMED_IAM"] or [], types)``.
    """
    iam_types: list[str] = []
    named = False
    for resource in template["Resources"].values():
        kind = str(resource.get("Type"))
        if kind in IAM_TYPES:
            iam_types.append(kind)
            name_property = _NAME_PROPERTIES.get(kind)
            if name_property and (resource.get("Properties") or {}).get(name_property):
                named = True
    if not iam_types:
        return [], []
    return ["CAPABILITY_NAMED_IAM" if named else "CAPABILITY_IAM"], sorted(
        set(iam_types)
    )


def check_capabilities(template: dict[str, Any], granted: list[str]) -> None:
    """Refuse a template whose IAM resources were not acknowledged.

    Raises:
        ServiceError: InsufficientCapabilitiesException, as AWS words it.
    """
    needed, _ = required_capabilities(template)
    if not needed:
        return
    if "CAPABILITY_NAMED_IAM" in granted:
        return
    if needed == ["CAPABILITY_IAM"] and "CAPABILITY_IAM" in granted:
        return
    raise ServiceError(
        "InsufficientCapabilitiesException", f"Requires capabilities : [{needed[0]}]"
    )


def resolve_parameters(
    template: dict[str, Any], given: list[dict[str, Any]], region: str
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Return parameter values for the evaluator and for DescribeStacks.

    Args:
        template: the parsed template.
        given: the request's ``Parameters`` (``ParameterKey``/``ParameterValue``).
        region: where to read SSM parameters.

    Returns:
        ``(values, view)``: the values ``Ref`` gives (lists for list types,
        SSM values resolved) and the stack's ``Parameters`` as DescribeStacks
        shows them (NoEcho values masked, ``ResolvedValue`` for SSM types).

    Raises:
        ServiceError: ValidationError naming the parameter at fault.
    """
    declared: dict[str, Any] = template.get("Parameters") or {}
    supplied = {p["ParameterKey"]: p.get("ParameterValue") for p in given}
    unknown = sorted(set(supplied) - set(declared))
    if unknown:
        raise _invalid(
            f"Parameters: [{', '.join(unknown)}] do not exist in the template"
        )
    missing = [
        name
        for name, spec in declared.items()
        if supplied.get(name) is None and "Default" not in spec
    ]
    if missing:
        raise _invalid(f"Parameters: [{', '.join(missing)}] must have values")

    values: dict[str, Any] = {}
    view: list[dict[str, str]] = []
    for name, spec in declared.items():
        raw = supplied.get(name)
        text = str(spec["Default"] if raw is None else raw)
        kind = str(spec.get("Type", "String"))
        _check_constraints(name, spec, text, kind)
        entry = {"ParameterKey": name, "ParameterValue": text}
        if str(spec.get("NoEcho", "false")).lower() == "true":
            entry["ParameterValue"] = "****"
        ssm = _SSM_TYPE.match(kind)
        if ssm:
            resolved = _read_ssm(text, region)
            entry["ResolvedValue"] = resolved
            values[name] = resolved.split(",") if "List<" in ssm.group(1) else resolved
        else:
            values[name] = parameter_value(kind, text)
        view.append(entry)
    return values, view


def _check_constraints(name: str, spec: dict[str, Any], text: str, kind: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and text not in [str(value) for value in allowed]:
        raise _invalid(f"Parameter '{name}' must be one of AllowedValues")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), text) is None:
        raise _invalid(f"Parameter '{name}' must match pattern {pattern}")
    if "MinLength" in spec and len(text) < int(spec["MinLength"]):
        raise _invalid(
            f"Parameter '{name}' must contain at least {spec['MinLength']} characters"
        )
    if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
        raise _invalid(
            f"Parameter '{name}' must contain at most {spec['MaxLength']} characters"
        )
    if kind != "Number":
        return
    try:
        number = float(text)
    except ValueError:
        raise _invalid(f"Parameter '{name}' must be a number") from None
    if "MinValue" in spec and number < float(spec["MinValue"]):
        raise _invalid(
            f"Parameter '{name}' must be a number not less than {spec['MinValue']}"
        )
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        raise _invalid(
            f"Parameter '{name}' must be a number not greater than {spec['MaxValue']}"
        )


def _read_ssm(name: str, region: str) -> str:
    try:
        found = internal.client("ssm", region).get_parameter(Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise _invalid(
                f"Unable to fetch parameters [{name}] from parameter store "
                "for this account."
            ) from None
        raise
    return str(found["Parameter"]["Value"])


@functools.lru_cache(maxsize=32)
def _zones(region: str, endpoint: str) -> tuple[str, ...]:
    zones = internal.client("ec2", region).describe_availability_zones()
    return tuple(zone["ZoneName"] for zone in zones["AvailabilityZones"])


def availability_zones(region: str) -> list[str]:
    """Return the availability zone names of ``region`` (for Fn::GetAZs)."""
    return list(_zones(region, internal.endpoint_url()))


def read_template_url(url: str, region: str) -> str:
    """Return the template body stored in S3 at ``url``.

    Both the virtual-hosted form (``https://bucket.s3.region.amazonaws.com/key``)
    and the path form (``https://s3.region.amazonaws.com/bucket/key``, or the
    local cloud's own endpoint) are accepted.

    Raises:
        ServiceError: ValidationError when the URL or the object is unusable.
    """
    parsed = urlparse(url)
    host, path = parsed.hostname or "", parsed.path.lstrip("/")
    if ".s3" in host and not host.startswith("s3"):
        bucket, key = host.split(".s3", 1)[0], path
    else:
        bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise _invalid("TemplateURL must be a supported URL.")
    try:
        body = internal.client("s3", region).get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        raise _invalid(f"S3 error: {message}") from None
    return body.read().decode()
