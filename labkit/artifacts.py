"""What the lab's stack is deployed from: its template and its Lambda code.

The template is read from the clone and sent whole as ``TemplateBody``. The
remediation Lambda code is zipped from ``labkit/remediation/`` and uploaded to
the lab's artifact bucket first, under keys that change when the code does.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from labkit import remediation
from labkit.errors import ConfigError, StackError
from labkit.lab import Lab

logger = logging.getLogger(__name__)

MAX_TEMPLATE_BODY = 51_200


def artifact_bucket_name(lab: Lab) -> str:
    """Return the name of the lab's artifact bucket in this account and region."""
    return f"labkit-artifacts-{lab.account_id}-{lab.region}"


def package_remediation(lab: Lab) -> dict[str, str]:
    """Zip the remediation handlers and upload them to the artifact bucket.

    The bucket ``labkit-artifacts-<account>-<region>`` is created if missing.
    Each key holds its zip's SHA-256, so changed code gets a new key and the
    stack picks it up; unchanged code is not uploaded again.

    Returns:
        ``ArtifactBucket``, ``IsolateCodeKey`` and ``RevokeCodeKey``.
    """
    s3 = lab.client("s3")
    bucket = artifact_bucket_name(lab)
    _ensure_bucket(s3, bucket, lab.region)

    keys = {"ArtifactBucket": bucket}
    for parameter, module in remediation.CODE_KEY_PARAMETERS.items():
        body = remediation.build_zip(module)
        digest = hashlib.sha256(body).hexdigest()
        key = f"remediation/{module}/{digest}.zip"
        _upload_once(s3, bucket, key, body)
        keys[parameter] = key
    return keys


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code not in ("404", "NoSuchBucket"):
            raise StackError(
                f"artifact bucket {bucket!r} cannot be used ({code}); it may "
                "belong to another account: check the credentials' account"
            ) from error

    # us-east-1 is the one region that refuses an explicit LocationConstraint.
    options: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        options["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**options)
    logger.info("Created artifact bucket %s", bucket)


def _upload_once(s3: Any, bucket: str, key: str, body: bytes) -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchKey"):
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/zip")
    logger.info("Uploaded s3://%s/%s", bucket, key)


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation's short tags (``!Ref`` ...)."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """Read ``!Fn value`` as the long form ``{"Fn::Fn": value}``."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _any_tag)


def read_template(path: Path) -> tuple[str, int]:
    """Read a CloudFormation template and count the resources it declares.

    Args:
        path: the template file, YAML with or without short tags.

    Returns:
        The template's text and its number of resources.

    Raises:
        ConfigError: the file is missing, or too large for ``TemplateBody``.
    """
    if not path.is_file():
        raise ConfigError(
            f"the lab template is missing: expected {str(path)!r}; "
            "install labkit from a clone of the lab repository (pip install -e .)"
        )
    body = path.read_text(encoding="utf-8")
    if len(body.encode("utf-8")) > MAX_TEMPLATE_BODY:
        raise ConfigError(
            f"{path.name} is {len(body.encode('utf-8'))} bytes, over "
            f"CloudFormation's {MAX_TEMPLATE_BODY}-byte TemplateBody limit; "
            "shorten the template"
        )
    return body, len(parse_template(body).get("Resources", {}))


def parse_template(body: str) -> dict[str, Any]:
    """Parse a YAML or JSON template, short tags read as their long forms."""
    return dict(yaml.load(body, Loader=_CfnLoader))  # noqa: S506 - safe subclass


def planned_resources(body: str, parameters: dict[str, str]) -> int:
    """Count the resources a stack will hold: those whose Condition is true.

    Conditions are evaluated from ``parameters`` and the template's
    defaults, with the functions conditions may use (``Fn::Equals``,
    ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition`` and ``Ref``).

    Raises:
        ConfigError: a condition uses anything else.
    """
    template = parse_template(body)
    values = {
        name: str(parameters.get(name, spec.get("Default", "")))
        for name, spec in (template.get("Parameters") or {}).items()
    }
    conditions = template.get("Conditions") or {}

    def holds(name: str) -> bool:
        return bool(evaluate(conditions[name]))

    def evaluate(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        ((function, argument),) = node.items()
        if function == "Ref":
            return values.get(argument, argument)
        if function == "Condition":
            return holds(argument)
        if function == "Fn::Equals":
            left, right = (str(evaluate(item)) for item in argument)
            return left == right
        if function == "Fn::Not":
            return not evaluate(argument[0])
        if function == "Fn::And":
            return all(evaluate(item) for item in argument)
        if function == "Fn::Or":
            return any(evaluate(item) for item in argument)
        raise ConfigError(
            f"cannot evaluate {function} in the template's Conditions: only "
            "Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition and Ref are allowed there"
        )

    resources = template.get("Resources") or {}
    return sum(
        1
        for resource in resources.values()
        if "Condition" not in resource or holds(resource["Condition"])
    )
