"""An ``aws`` CLI command line read as the one API call it makes.

The AWS CLI names each operation and parameter after botocore's model: the
command ``put-parameter`` is the operation ``PutParameter`` and the option
``--table-name`` is the member ``TableName``. Reading a command with the
same model gives the call the CLI would send, so the local cloud can play
what an instance's script does without a copy of its arguments in code.

Supported: string, number and boolean options (``--flag``/``--no-flag``),
lists of scalars as several words, structures, maps and lists given as
JSON, and the global options ``--region``, ``--output``, ``--query`` and
the CLI's display switches. Shorthand syntax, ``file://`` values, blobs,
timestamps, ``--profile`` and ``--endpoint-url`` are not supported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore import xform_name
from botocore.model import Shape, StructureShape

from labkit.local import protocol

logger = logging.getLogger(__name__)

# CLI command names that differ from the botocore service name.
_SERVICE_NAMES = {"s3api": "s3", "configservice": "config"}
# Commands that change only the machine's own files and call no API.
_LOCAL_ONLY = {"configure", "help", "history"}
# Global options that shape the output or the terminal, not the request.
_DISPLAY_OPTIONS = {"--output", "--query", "--color", "--cli-binary-format"}
_DISPLAY_FLAGS = {"--no-cli-pager", "--no-paginate", "--debug", "--no-cli-auto-prompt"}
_UNSUPPORTED_OPTIONS = {
    "--profile": "the local cloud signs with the instance's own credentials",
    "--endpoint-url": "the local cloud is the only endpoint",
    "--no-sign-request": "every call to the local cloud is signed",
    "--cli-input-json": "options are read from the command line only",
    "--cli-input-yaml": "options are read from the command line only",
}


class CliUsageError(ValueError):
    """A command line the AWS CLI itself would refuse."""


@dataclass(frozen=True)
class ApiCall:
    """The call an ``aws`` command makes.

    Attributes:
        service: botocore service name, such as ``"ssm"``.
        operation: AWS operation name, such as ``"PutParameter"``.
        params: the request's parameters, by member name.
        region: the region from ``--region``; None without it (the CLI then
            uses its configured region, on an instance the instance's own).
    """

    service: str
    operation: str
    params: dict[str, Any]
    region: str | None

    @property
    def method(self) -> str:
        """The boto3 client method that makes the call."""
        return xform_name(self.operation)


def read_command(words: tuple[str, ...]) -> ApiCall | None:
    """Read ``aws <service> <command> [options]`` as the call it makes.

    Args:
        words: the command's words, starting with ``aws`` (or a path to it).

    Returns:
        The call, or None for a command that calls no API (``aws configure``).

    Raises:
        CliUsageError: the CLI would refuse the command (unknown option,
            missing required option, value of the wrong type).
        NotImplementedError: a form of the CLI this reader does not support.
    """
    if len(words) < 2 or words[0].rsplit("/", 1)[-1] != "aws":
        raise CliUsageError(f"not an aws command: {' '.join(words[:3])!r}")
    region, rest = _global_options(list(words[1:]))
    if rest and rest[0] in _LOCAL_ONLY:
        return None
    if len(rest) < 2:
        raise CliUsageError(f"aws needs a service and a command, got {rest!r}")
    service = _service(rest[0])
    operation = _operation(service, rest[1])
    shape = protocol.service_model(service).operation_model(operation).input_shape
    params = _params(service, rest[1], shape, rest[2:])
    return ApiCall(service, operation, params, region)


def _global_options(words: list[str]) -> tuple[str | None, list[str]]:
    """Take the global options out of ``words`` wherever they are."""
    region: str | None = None
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in _UNSUPPORTED_OPTIONS:
            reason = _UNSUPPORTED_OPTIONS[word]
            raise NotImplementedError(f"aws {word} is not supported: {reason}")
        if word == "--region":
            if index + 1 == len(words):
                raise CliUsageError("--region needs a value, such as eu-west-2")
            region = words[index + 1]
            index += 2
        elif word in _DISPLAY_OPTIONS:
            index += 2
        elif word in _DISPLAY_FLAGS:
            index += 1
        else:
            rest.append(word)
            index += 1
    return region, rest


def _service(command: str) -> str:
    if command == "s3":
        raise NotImplementedError(
            "the high-level 'aws s3' commands are not supported; use 'aws s3api'"
        )
    service = _SERVICE_NAMES.get(command, command)
    if service not in protocol.LAB_SERVICES:
        raise NotImplementedError(
            f"aws {command} is not supported: the local cloud serves "
            f"{', '.join(protocol.LAB_SERVICES)}"
        )
    return service


def _operation(service: str, command: str) -> str:
    names = protocol.service_model(service).operation_names
    by_command = {xform_name(name, "-"): name for name in names}
    if command not in by_command:
        raise NotImplementedError(
            f"aws {service} {command} is not supported: it is not one "
            f"operation of {service} (see 'aws {service} help')"
        )
    return by_command[command]


def _params(
    service: str, command: str, shape: StructureShape | None, words: list[str]
) -> dict[str, Any]:
    members = shape.members if shape is not None else {}
    options = {xform_name(name, "-"): name for name in members}
    params: dict[str, Any] = {}
    for option, values in _options(service, command, words):
        negated = option.startswith("no-") and option[3:] in options
        name = options.get(option[3:] if negated else option)
        if name is None:
            raise CliUsageError(
                f"aws {service} {command}: unknown option --{option}; "
                f"allowed: {', '.join('--' + o for o in sorted(options))}"
            )
        params[name] = _value(f"--{option}", members[name], values, negated)
    required = shape.required_members if shape is not None else []
    missing = [f"--{xform_name(name, '-')}" for name in required if name not in params]
    if missing:
        raise CliUsageError(
            f"aws {service} {command}: missing required {', '.join(missing)}"
        )
    return params


def _options(
    service: str, command: str, words: list[str]
) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for word in words:
        if word.startswith("--"):
            found.append((word[2:], []))
        elif found:
            found[-1][1].append(word)
        else:
            raise CliUsageError(
                f"aws {service} {command}: unexpected word {word!r} before any option"
            )
    return found


def _value(option: str, shape: Shape, values: list[str], negated: bool) -> Any:
    kind = shape.type_name
    if kind == "boolean":
        if values:
            raise CliUsageError(f"{option} is a switch and takes no value")
        return not negated
    if kind == "list" and getattr(shape, "member", None) is not None:
        member = shape.member  # type: ignore[attr-defined]
        if member.type_name not in ("structure", "map", "list"):
            if len(values) == 1 and values[0].lstrip().startswith("["):
                return _json(option, values[0])
            return [_scalar(option, member.type_name, value) for value in values]
    if len(values) != 1:
        raise CliUsageError(f"{option} takes one value, got {len(values)}")
    if kind in ("structure", "map", "list"):
        if not values[0].lstrip().startswith(("{", "[")):
            raise NotImplementedError(
                f"{option}: shorthand syntax is not supported; give the value as JSON"
            )
        return _json(option, values[0])
    return _scalar(option, kind, values[0])


def _scalar(option: str, kind: str, value: str) -> Any:
    if value.startswith(("file://", "fileb://")):
        raise NotImplementedError(f"{option}: file:// values are not supported")
    if kind == "string":
        return value
    if kind in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            raise CliUsageError(f"{option} takes an integer") from None
    if kind in ("float", "double"):
        try:
            return float(value)
        except ValueError:
            raise CliUsageError(f"{option} takes a number") from None
    raise NotImplementedError(f"{option}: values of type {kind} are not supported")


def _json(option: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliUsageError(f"{option} is not valid JSON: {error.msg}") from None
