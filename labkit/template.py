"""CloudFormation templates: loading, parameters, conditions and intrinsics.

Pure functions of a template's text and the values given to it, shared by
labkit (which counts the resources a stack will hold, in both modes) and the
local cloud's CloudFormation engine (which creates them). Nothing here calls
a service: availability zones and resources' ids come from the caller.

A template is read from JSON or YAML, where YAML may use the short-form tags
(``!Ref``, ``!Sub``, ``!GetAtt`` ...), read as cfn-lint reads them: ``!Name``
is ``Fn::Name``, except ``!Ref`` and ``!Condition``. :class:`Evaluator`
resolves the intrinsic functions against the stack's parameters, pseudo
parameters, conditions and the resources created so far; a function it does
not know is a :class:`TemplateError`. ``Fn::ImportValue`` and
``Fn::Transform`` are not supported, nor the ``AWS::LanguageExtensions``
functions (``Fn::Length``, ``Fn::ToJsonString``, ``Fn::ForEach``).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

logger = logging.getLogger(__name__)


class TemplateError(ValueError):
    """The template or a value in it cannot be used.

    Where CloudFormation has a wording for the fault, the text is AWS's, as
    the local cloud serves it to callers.
    """


class _NoValue:
    """The value of ``Ref: AWS::NoValue``: the property is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class _TemplateLoader(yaml.SafeLoader):
    """A YAML loader for templates: short-form tags, dates kept as text."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """Read ``!Name value`` as the long form ``{"Fn::Name": value}``."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    return {key: value}


_TemplateLoader.add_multi_constructor("!", _construct_tag)
# A template's "2010-09-09" is a string, not a date.
_TemplateLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(body: str) -> dict[str, Any]:
    """Parse a template body written in JSON or YAML.

    Args:
        body: the template text.

    Returns:
        The template as a dict, short-form tags turned into long form.

    Raises:
        TemplateError: the text is not a template, or has no Resources.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        try:
            parsed = yaml.load(body, Loader=_TemplateLoader)  # noqa: S506
        except yaml.YAMLError as error:
            raise TemplateError(f"Template format error: {error}") from None
    if not isinstance(parsed, dict):
        raise TemplateError("Template format error: JSON not well-formed.")
    resources = parsed.get("Resources")
    if not isinstance(resources, dict) or not resources:
        message = (
            "Template format error: At least one Resources member must be defined."
        )
        raise TemplateError(message)
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or "Type" not in resource:
            message = (
                f"Template format error: [/Resources/{logical_id}] "
                "Every Resources object must contain a Type member."
            )
            raise TemplateError(message)
    return parsed


def pseudo_parameters(
    account_id: str,
    region: str,
    stack_name: str,
    stack_id: str | None = None,
    notification_arns: list[str] | None = None,
) -> dict[str, Any]:
    """Return the pseudo parameters of a stack (``AWS::Region`` ...).

    Args:
        account_id: the stack's account.
        region: the stack's region; it gives the partition and URL suffix.
        stack_name: the stack's name.
        stack_id: the stack's id, once CreateStack has given it; without it
            ``AWS::StackId`` is left out, so a ``Ref`` to it cannot resolve.
        notification_arns: the stack's ``NotificationARNs``.
    """
    china = region.startswith("cn-")
    if china:
        partition = "aws-cn"
    elif region.startswith("us-gov-"):
        partition = "aws-us-gov"
    else:
        partition = "aws"
    pseudo: dict[str, Any] = {
        "AWS::AccountId": account_id,
        "AWS::Region": region,
        "AWS::StackName": stack_name,
        "AWS::Partition": partition,
        "AWS::URLSuffix": "amazonaws.com.cn" if china else "amazonaws.com",
        "AWS::NotificationARNs": list(notification_arns or []),
    }
    if stack_id is not None:
        pseudo["AWS::StackId"] = stack_id
    return pseudo


def parameter_value(kind: str, text: str) -> Any:
    """Return what ``Ref`` gives of a parameter of type ``kind`` set to ``text``.

    List types (``CommaDelimitedList``, ``List<...>``) give a list of their
    comma-separated items; other types give the text. The value of an
    ``AWS::SSM::Parameter::Value<...>`` type is read from Parameter Store by
    the caller.
    """
    if kind.startswith("List<") or kind == "CommaDelimitedList":
        return [item.strip() for item in text.split(",")] if text else []
    return text


@dataclass
class Evaluator:
    """Resolves intrinsic functions for one stack.

    Attributes:
        template: the parsed template.
        parameters: parameter values after defaults and SSM resolution.
        pseudo: the pseudo parameters (``AWS::Region`` ...).
        physical_ids: physical ids of the resources created so far.
        attributes: their ``Fn::GetAtt`` attributes.
        get_azs: returns the availability zones of a region.
    """

    template: Mapping[str, Any]
    parameters: dict[str, Any]
    pseudo: dict[str, Any]
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    get_azs: Callable[[str], list[str]] = lambda region: []
    _conditions: dict[str, bool] = field(default_factory=dict)

    def condition(self, name: str) -> bool:
        """Return the value of the template's condition ``name``."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(
                    f"Template format error: Unresolved condition dependency {name}"
                )
            self._conditions[name] = _truth(self, conditions[name])
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        """Return ``value`` with every intrinsic function evaluated."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
            if key.startswith("Fn::"):
                raise TemplateError(
                    f"Template format error: {key} is not a function that can "
                    f"be evaluated here; known: {', '.join(sorted(_FUNCTIONS))}"
                )
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def ref(self, name: str) -> Any:
        """Return what ``Ref`` of ``name`` gives."""
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise TemplateError(
            f"Template format error: Unresolved resource dependencies [{name}] "
            "in the Resources block of the template"
        )

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """Return what ``Fn::GetAtt`` of ``logical_id.attribute`` gives."""
        if logical_id not in self.attributes:
            raise TemplateError(
                f"Template error: instance of Fn::GetAtt references undefined "
                f"resource {logical_id}"
            )
        values = self.attributes[logical_id]
        if attribute not in values:
            raise TemplateError(
                f"Template error: resource {logical_id} does not support attribute "
                f"type {attribute} in Fn::GetAtt"
            )
        return values[attribute]


def _fn_ref(ev: Evaluator, argument: Any) -> Any:
    return ev.ref(str(ev.resolve(argument)))


def _fn_get_att(ev: Evaluator, argument: Any) -> Any:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    logical_id, attribute = (str(ev.resolve(part)) for part in argument)
    return ev.get_att(logical_id, attribute)


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _fn_sub(ev: Evaluator, argument: Any) -> str:
    if isinstance(argument, list):
        text, variables = argument[0], ev.resolve(argument[1])
    else:
        text, variables = argument, {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return _as_text(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return _as_text(ev.get_att(logical_id, attribute))
        return _as_text(ev.ref(name))

    return _SUB_VARIABLE.sub(replace, str(text))


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _fn_join(ev: Evaluator, argument: Any) -> str:
    delimiter, items = ev.resolve(argument)
    return str(delimiter).join(_as_text(item) for item in items)


def _fn_if(ev: Evaluator, argument: Any) -> Any:
    name, if_true, if_false = argument
    return ev.resolve(if_true if ev.condition(name) else if_false)


def _fn_equals(ev: Evaluator, argument: Any) -> bool:
    left, right = ev.resolve(argument)
    return _as_text(left) == _as_text(right)


def _fn_not(ev: Evaluator, argument: Any) -> bool:
    return not _truth(ev, argument[0])


def _fn_and(ev: Evaluator, argument: Any) -> bool:
    return all(_truth(ev, item) for item in argument)


def _fn_or(ev: Evaluator, argument: Any) -> bool:
    return any(_truth(ev, item) for item in argument)


def _truth(ev: Evaluator, item: Any) -> bool:
    value = ev.resolve(item)
    return value is True or str(value).lower() == "true"


def _fn_condition(ev: Evaluator, argument: Any) -> bool:
    return ev.condition(str(argument))


def _fn_select(ev: Evaluator, argument: Any) -> Any:
    index, items = ev.resolve(argument)
    if isinstance(items, str):
        items = items.split(",")
    try:
        return items[int(index)]
    except (IndexError, ValueError):
        raise TemplateError(
            f"Template error: Fn::Select cannot select index {index!r} "
            f"of a list of {len(items)}"
        ) from None


def _fn_get_azs(ev: Evaluator, argument: Any) -> list[str]:
    region = ev.resolve(argument) or ev.pseudo["AWS::Region"]
    return ev.get_azs(str(region))


def _fn_base64(ev: Evaluator, argument: Any) -> str:
    text = _as_text(ev.resolve(argument))
    return base64.b64encode(text.encode()).decode()


def _fn_split(ev: Evaluator, argument: Any) -> list[str]:
    delimiter, text = ev.resolve(argument)
    return _as_text(text).split(str(delimiter))


def _fn_find_in_map(ev: Evaluator, argument: Any) -> Any:
    map_name, top_key, second_key = (str(part) for part in ev.resolve(argument))
    try:
        return ev.template["Mappings"][map_name][top_key][second_key]
    except (KeyError, TypeError):
        raise TemplateError(
            f"Template error: Unable to get mapping for "
            f"{map_name}::{top_key}::{second_key}"
        ) from None


def _fn_cidr(ev: Evaluator, argument: Any) -> list[str]:
    block, count, bits = ev.resolve(argument)
    network = ipaddress.ip_network(str(block))
    prefix = network.max_prefixlen - int(bits)
    subnets = network.subnets(new_prefix=prefix)
    return [str(next(subnets)) for _ in range(int(count))]


def _fn_unsupported(name: str) -> Callable[[Evaluator, Any], Any]:
    def fail(ev: Evaluator, argument: Any) -> Any:
        raise TemplateError(
            f"{name} is not supported by labkit's template evaluator, "
            "nor by the local cloud"
        )

    return fail


_FUNCTIONS: dict[str, Callable[[Evaluator, Any], Any]] = {
    "Ref": _fn_ref,
    "Condition": _fn_condition,
    "Fn::GetAtt": _fn_get_att,
    "Fn::Sub": _fn_sub,
    "Fn::Join": _fn_join,
    "Fn::If": _fn_if,
    "Fn::Equals": _fn_equals,
    "Fn::Not": _fn_not,
    "Fn::And": _fn_and,
    "Fn::Or": _fn_or,
    "Fn::Select": _fn_select,
    "Fn::GetAZs": _fn_get_azs,
    "Fn::Base64": _fn_base64,
    "Fn::Split": _fn_split,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Cidr": _fn_cidr,
    "Fn::ImportValue": _fn_unsupported("Fn::ImportValue"),
    "Fn::Transform": _fn_unsupported("Fn::Transform"),
}


def references(value: Any) -> set[str]:
    """Return every name that ``value`` refers to with Ref, GetAtt or Sub.

    Parameters and pseudo parameters are included; callers keep the names
    that are resources.
    """
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                parts = item.split(".", 1) if isinstance(item, str) else item
                if isinstance(parts[0], str):
                    found.add(parts[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                local = set(item[1]) if isinstance(item, list) else set()
                if isinstance(text, str):
                    names = _SUB_VARIABLE.findall(text)
                    found |= {
                        name.strip().split(".", 1)[0]
                        for name in names
                        if not name.startswith("!") and name.strip() not in local
                    }
                if isinstance(item, list):
                    found |= references(item[1])
            found |= references(item)
    return found
