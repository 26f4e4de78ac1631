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

from botocore.exceptions import ClientError

from labkit import remediation
from labkit.errors import ConfigError, StackError
from labkit.lab import Lab
from labkit.template import (
    Evaluator,
    TemplateError,
    load_template,
    parameter_value,
)

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


def read_template(path: Path) -> tuple[str, int]:
    """Read a CloudFormation template and count the resources it declares.

    Args:
        path: the template file, JSON or YAML with or without short tags.

    Returns:
        The template's text and its number of resources.

    Raises:
        ConfigError: the file is missing, too large for ``TemplateBody``, or
            not a template.
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
    try:
        parsed = load_template(body)
    except TemplateError as error:
        raise ConfigError(
            f"{str(path)!r} is not a CloudFormation template ({error}); "
            "restore it from the lab repository (git checkout cfn/)"
        ) from None
    return body, len(parsed["Resources"])


def planned_resources(
    body: str, parameters: dict[str, str], pseudo: dict[str, Any] | None = None
) -> int:
    """Count the resources a stack will hold: those whose Condition is true.

    Conditions are evaluated as CloudFormation evaluates them, by
    :mod:`labkit.template`, from ``parameters``, the template's defaults
    and the pseudo parameters. What is only known once the stack exists
    (``AWS::StackId``, the value behind an SSM parameter type, availability
    zones) or a function the evaluator does not know leaves a condition
    undecided: its resources are counted and the reason is logged at DEBUG.
    The count only sizes the progress bar, which ends at what the stack
    really holds, so it never stops a deploy.

    Args:
        body: the template's text.
        parameters: the stack's parameter values, by name.
        pseudo: the pseudo parameters, from :func:`labkit.template.pseudo_parameters`.

    Returns:
        How many resources the stack should hold.

    Raises:
        TemplateError: ``body`` is not a template (:func:`read_template`
            checks that first).
    """
    template = load_template(body)
    evaluator = Evaluator(
        template=template,
        parameters=_parameter_values(template, parameters),
        pseudo=dict(pseudo or {}),
        get_azs=_zones_unknown,
    )
    return sum(
        1
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource
        or _holds(evaluator, str(resource["Condition"]), logical_id)
    )


def _parameter_values(
    template: dict[str, Any], given: dict[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        text = given.get(name, spec.get("Default"))
        kind = str(spec.get("Type", "String"))
        # Without a value, or with one CloudFormation reads from Parameter
        # Store, a Ref to the parameter cannot be resolved here.
        if text is not None and not kind.startswith("AWS::SSM::Parameter::Value<"):
            values[name] = parameter_value(kind, str(text))
    return values


def _zones_unknown(region: str) -> list[str]:
    raise TemplateError(f"the availability zones of {region} are not known here")


# TemplateError (a ValueError), or a malformed condition, which CloudFormation
# refuses at CreateStack with its own message.
_UNDECIDED = (ValueError, TypeError, LookupError)


def _holds(evaluator: Evaluator, condition: str, logical_id: str) -> bool:
    try:
        return evaluator.condition(condition)
    except _UNDECIDED as error:
        logger.debug(
            "condition %s of %s is not decided before the stack exists (%s): "
            "counting the resource",
            condition,
            logical_id,
            error,
        )
        return True
